"""A lowered graph for the cuda target: the core's Program, with every library compiled ahead of time by nvcc
(nvcc.py) and run on a CUDA device when there is one.

Builds are cached (memory + disk) as the AOT library, so a cache hit and an export carry fatbin, never CUDA
source. Without a CUDA device everything up to the launch works (plan, kernels, nvcc, export); calling the
model raises `NoCudaDeviceError`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import tvm

from ..core.builder import build_plan, compile_funcs
from .tensor_core import cuda_build_config
from ..core.cache import cache_key
from ..core.plan import Plan
from ..core.program import GENERIC, Program
from ..core.runner import PlanRunner
from ..core.runtime import PlanExecutor
from .capabilities import cuda_device_present
from .nvcc import export_aot


# written next to every library: the CUDA source nvcc compiled, its fatbin, and what export_aot reported
SIDE_FILES = ("kernels.cu", "kernels.fatbin", "kernels.so.json")


class NoCudaDeviceError(RuntimeError):
    """The model was compiled for cuda but this machine has no CUDA device to run it on."""


def cuda_device():
    """TVM's cuda:0 when this process can use it (driver + TVM's CUDA runtime), else None."""
    if not cuda_device_present():
        return None
    try:
        dev = tvm.cuda(0)
        return dev if dev.exist else None
    except Exception:  # noqa: BLE001 - no CUDA runtime in this TVM build
        return None


class CudaLibrary:
    """An AOT library file (host code + fatbin) and, on a machine with a device, the module loaded from it."""

    def __init__(self, path: str, info: dict, module=None):
        self.path, self.info, self.module = path, info, module

    def export_library(self, path: str) -> None:
        with open(self.path, "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())

    def __getitem__(self, name: str):
        if self.module is None:
            raise NoCudaDeviceError(_no_device_message())
        return self.module[name]


def _no_device_message() -> str:
    return ("no CUDA device is present on this machine: the model was generated and compiled for cuda (kernels "
            "built by nvcc) but cannot run here; export it (CompiledModel.export / attncc compile --export) and "
            "run the folder on a GPU machine with TVM's runtime (see the folder's README)")


class CudaPlanRunner(PlanRunner):
    """A plan on a CUDA device: inputs go to the device, outputs come back as torch (DLPack) or numpy (copy)."""

    def __init__(self, plan: Plan, lib, constants: dict, references: dict, device):
        PlanExecutor.__init__(self, json.loads(plan.to_json()), lib, constants, device)
        self.plan, self.references = plan, references

    def to_tensor(self, x, name: str, dtype: str):
        if hasattr(x, "__dlpack_device__") and x.__dlpack_device__()[0] == 2 and str(x.dtype).replace("torch.", "") == dtype:
            return tvm.runtime.from_dlpack(x)   # already on the GPU
        a = np.asarray(x.cpu().numpy() if hasattr(x, "cpu") else x)
        return tvm.runtime.tensor(np.ascontiguousarray(a.astype(dtype) if str(a.dtype) != dtype else a), self.dev)

    def __call__(self, inputs, as_torch: bool = False):
        outs = self.run(inputs)
        return [__import__("torch").from_dlpack(t) if as_torch else t.numpy() for t in outs]


class _NoDeviceRunner:
    """Stands in for a runner where no CUDA device exists: export works, calling raises NoCudaDeviceError."""

    def __init__(self, plan: Plan, lib: CudaLibrary | None, constants: dict):
        # lib None: every step runs on the host (a variant with only the numpy reference), nothing to export
        self.plan, self.lib, self.library_path = plan, lib, lib.path if lib is not None else None
        self._persistent = constants

    def __call__(self, inputs, as_torch: bool = False):
        raise NoCudaDeviceError(_no_device_message())

    run = profile = __call__


class CudaProgram(Program):
    """Program whose builds are AOT libraries (see module docstring)."""

    def _runner(self, slot, shapes: tuple, generic: bool):
        signature = [list(v.shape) for v in self.graph.inputs] if generic else shapes
        key = cache_key(self.graph, self.target, self.options, signature, self.plugin.name)
        use_cache = self.options.get("cache", True)
        entry = self.cache.get_memory(key) if use_cache else None
        if entry is None and use_cache:
            disk = self.cache.load_disk(key, self.plugin.name)
            if disk is not None:
                plan_json, lib_path = disk
                info = _read_info(lib_path)
                entry = (Plan.from_json(plan_json), CudaLibrary(lib_path, info) if lib_path else None)
                self.cache.stats.disk_hits += 1
        if entry is None:
            self.cache.stats.misses += 1
            self.builds += 1
            # this model's absorbed-MLA dims (set by CudaBackend.lower), not those of the plugin's last lower()
            self.plugin.mla = getattr(self, "mla_signatures", set())
            plan, _ = build_plan(self.graph, shapes, self.target, self.options, self.plugin, generic=generic)
            entry = (plan, self._compile(plan))
            if use_cache:
                self.cache.save_disk(key, plan.to_json(), entry[1], self.plugin.name)
                saved = os.path.join(self.cache.disk_path(key, self.plugin.name), "kernels.so")
                if entry[1] is not None and os.path.exists(saved):   # the cache's copy outlives the temp dir
                    for name in SIDE_FILES:
                        if os.path.exists(os.path.join(os.path.dirname(entry[1].path), name)):
                            shutil.copyfile(os.path.join(os.path.dirname(entry[1].path), name),
                                            os.path.join(os.path.dirname(saved), name))
                    entry = (plan, CudaLibrary(saved, entry[1].info))
        if use_cache:
            self.cache.put_memory(key, entry)
        plan, lib = entry
        runner = self._bind(plan, lib, lib.path if lib else None)
        for n in plan.notes:
            if n not in self.notes:
                self.notes.append(n)
        self.runners[slot], self.keys[slot] = runner, key
        return runner

    def _compile(self, plan: Plan) -> CudaLibrary | None:
        """TVM codegen, then nvcc for the target's arch; the library and its sources go to a temp folder."""
        mod = compile_funcs(plan, self.target, cuda_build_config())
        if mod is None:
            return None
        work = tempfile.mkdtemp(prefix="attncc-cuda-")
        path = os.path.join(work, "kernels.so")
        info = export_aot(mod.mod if hasattr(mod, "mod") else mod, path, self.target["arch"], work)
        with open(os.path.join(work, "kernels.so.json"), "w") as f:
            json.dump(info, f)
        plan.notes.extend(n for n in [f"cuda kernels compiled ahead of time by nvcc for {info['arch']} "
                                      f"({len(info['kernels'])} kernels, {info['fatbin_bytes']} B fatbin)"]
                          if n not in plan.notes)
        return CudaLibrary(path, info)

    def _from_disk(self, plan_json: str, lib_path: str | None):   # not used: _runner reads the disk cache itself
        return Plan.from_json(plan_json), CudaLibrary(lib_path, _read_info(lib_path)) if lib_path else None, lib_path

    def _bind(self, plan: Plan, lib, library_path: str | None = None):
        device = cuda_device()
        nodes = {n.name: n for n in self.graph.nodes}
        from ..core.attention import reference_callable
        from ..core.groups import materialize_constant

        consts = {name: materialize_constant(plan, self.graph.constants, name, self.plugin.matmul)
                  for name, info in plan.values.items() if info["storage"] == "const"}
        if lib is not None and not isinstance(lib, CudaLibrary):   # a library loaded from an export folder
            lib = CudaLibrary(library_path, _read_info(library_path), lib)
        if device is None:
            return _NoDeviceRunner(plan, lib, consts)
        if lib is not None and lib.module is None:
            lib.module = tvm.runtime.load_module(lib.path)
        refs = {i: reference_callable(nodes[s["node"]]) for i, s in enumerate(plan.steps) if s["kind"] == "reference"}
        runner = CudaPlanRunner(plan, lib, consts, refs, device)
        runner.library_path = library_path
        return runner

    def __call__(self, inputs):
        runner = self.runner_for(tuple(tuple(int(d) for d in x.shape) for x in inputs))
        as_torch = bool(inputs) and all(type(x).__module__.startswith("torch") for x in inputs)
        return runner(inputs, as_torch=as_torch)


def _read_info(lib_path: str | None) -> dict:
    if lib_path and os.path.exists(lib_path + ".json"):
        with open(lib_path + ".json") as f:
            return json.load(f)
    return {}


__all__ = ["CudaProgram", "NoCudaDeviceError", "GENERIC", "cuda_device"]
