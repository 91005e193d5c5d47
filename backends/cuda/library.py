"""The cuda target's libraries: compiled ahead of time by nvcc (nvcc.py), run on a CUDA device when there is one
(the plugin's build_library / load_library / make_runner stages).

Builds are cached (memory + disk) as the AOT library, so a cache hit and an export carry fatbin, never CUDA
source. Without a CUDA device everything up to the launch works (plan, kernels, nvcc, export); calling the
model raises `NoCudaDeviceError`.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import tvm

from ..core.builder import compile_funcs
from ..core.notes import KERNEL, LoweringNote
from ..core.plan import Plan
from ..core.runner import PlanRunner
from ..core.runtime import PlanExecutor
from .tensor_core import cuda_build_config
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


def compile_cuda(plan: Plan, target: dict) -> CudaLibrary | None:
    """TVM codegen, then nvcc for the target's arch; the library and its sources go to a temp folder."""
    mod = compile_funcs(plan, target, cuda_build_config())
    if mod is None:
        return None
    work = tempfile.mkdtemp(prefix="attncc-cuda-")
    path = os.path.join(work, "kernels.so")
    info = export_aot(mod.mod if hasattr(mod, "mod") else mod, path, target["arch"], work)
    with open(os.path.join(work, "kernels.so.json"), "w") as f:
        json.dump(info, f)
    plan.notes.extend(n for n in [LoweringNote(None, KERNEL, f"cuda kernels compiled ahead of time by nvcc for "
                                               f"{info['arch']} ({len(info['kernels'])} kernels, "
                                               f"{info['fatbin_bytes']} B fatbin)")] if n not in plan.notes)
    return CudaLibrary(path, info)


def make_cuda_runner(plan: Plan, lib: CudaLibrary | None, constants: dict, references: dict,
                     library_path: str | None = None):
    """The plan on cuda:0 (the library mapped now), or a runner that raises NoCudaDeviceError when called."""
    library_path = library_path or (lib.path if lib is not None else None)
    device = cuda_device()
    if device is None:
        return _NoDeviceRunner(plan, lib, constants)
    if lib is not None and lib.module is None:
        lib.module = tvm.runtime.load_module(lib.path)
    runner = CudaPlanRunner(plan, lib, constants, references, device)
    runner.library_path = library_path
    return runner


def read_info(lib_path: str | None) -> dict:
    """What nvcc's export reported for a library (arch, kernels, fatbin bytes), from its .json beside it."""
    if lib_path and os.path.exists(lib_path + ".json"):
        with open(lib_path + ".json") as f:
            return json.load(f)
    return {}


__all__ = ["CudaLibrary", "NoCudaDeviceError", "compile_cuda", "cuda_device", "make_cuda_runner", "read_info"]
