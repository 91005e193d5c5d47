"""The `cuda` target plugin: dlight GPU schedules, [K, N] matmuls, flash attention, nvcc AOT libraries.

Its identity (options, TVM target per arch, capabilities, the device it is priced as, SMs) is its record
(record.py). Stages that differ from the core's: check_graph (a forced tile must fit), build_library (TVM's
CUDA codegen, then nvcc), save/load (the library with its CUDA source and fatbin), make_runner (the plan on a
CUDA device, or a runner that explains there is none), export_extras (cuda/ with sources and fatbins).
"""
from __future__ import annotations

import os
import shutil
from typing import Any

from ..core.errors import LoweringError
from ..core.plugin import TargetPlugin
from .arch import DEFAULT_ARCH, cuda_arch
from .matmul import CudaMatmul
from .record import NAME
from .schedules import make_schedule

FOLDER_NOTE = """CUDA kernels of this model, for inspection (the libraries kernels_<i>.so already carry them compiled):
  kernels_<i>.cu      the CUDA source TVM generated for build i
  kernels_<i>.fatbin  what nvcc made of it for {arch} (embedded in kernels_<i>.so; loaded with cuModuleLoadData)
Running needs an NVIDIA GPU of that arch, its driver, and TVM's runtime with CUDA
(tvm/lib/libtvm_runtime_cuda.so); no nvcc or NVRTC.
"""


class CudaPlugin(TargetPlugin):
    """NVIDIA sm_80 / sm_90a through TVM's CUDA codegen; kernels compiled ahead of time by nvcc."""

    name = NAME

    def __init__(self):
        self.options = self.record().options        # of the last tvm_target(): the arch the schedules size for
        self.matmul = CudaMatmul(lambda: self.options.arch)

    @property
    def arch(self) -> str:
        return self.options.arch

    @property
    def forced_tile(self) -> tuple:
        """(q_block, kv_block) forced through the options: taken as given, checked, never shrunk."""
        return self.options.q_block, self.options.kv_block

    @property
    def hardware(self) -> str:
        return self.record({"arch": self.arch}).device

    @property
    def capabilities(self):
        return self.record({"arch": self.arch}).capabilities

    def tvm_target(self, options: dict[str, Any]) -> dict:
        """options["arch"]: sm_80 | sm_90a (default) or an alias (a100, h100, h200); options["q_block"] /
        ["kv_block"] force the attention tile. The schedules of the build that follows use this arch's limits."""
        rec = self.record(options)
        self.options = rec.options
        return dict(rec.tvm_target)

    def check_graph(self, graph, target: dict, options: dict[str, Any]) -> None:
        """A tile forced through the options must fit every attention op on the arch (shared memory, threads,
        registers); otherwise a LoweringError naming the node, the op and the limit, before any codegen."""
        from .attention.resources import ELEM, TileError, choose_tile

        forced = self.forced_tile
        if not any(forced):
            return
        for node in graph.nodes:
            if node.op.op_name != "Attention":
                continue
            spec, dtype = node.op.spec, node.inputs[0].dtype
            try:
                choose_tile(1, spec.head_dim, spec.v_head_dim, dtype if dtype in ELEM else "float32",
                            cuda_arch(target["arch"]), forced[0], forced[1], forced=True)
            except TileError as e:
                raise LoweringError(node.name, "Attention", str(e), target=self.name) from None

    def schedule(self, kind: str):
        return make_schedule(kind, lambda: self.arch)

    def attention_primfunc(self, cfg, target: dict):
        """(PrimFunc, metadata) of the flash kernel for `cfg` (prefill, or split-KV decode + combine)."""
        from .attention import attention_primfunc

        return attention_primfunc(cfg, target, self.forced_tile)

    def build_library(self, plan, target: dict):
        """TVM's CUDA codegen, then nvcc for the target's arch (library.py)."""
        from .library import compile_cuda

        return compile_cuda(plan, target)

    def save_library(self, lib, path: str) -> None:
        """The AOT library, with its CUDA source, fatbin and nvcc report beside it."""
        from .library import SIDE_FILES

        super().save_library(lib, path)
        src, dst = os.path.dirname(lib.path), os.path.dirname(path)
        for name in SIDE_FILES if os.path.basename(path) == "kernels.so" else ():   # a cache entry
            if os.path.exists(os.path.join(src, name)) and src != dst:
                shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))

    def load_library(self, path: str):
        """The library file and its nvcc report; mapped onto the device only when a runner needs it."""
        from .library import CudaLibrary, read_info

        return CudaLibrary(path, read_info(path))

    def prepare_runtime(self, target: dict) -> list[str]:
        from .library import cuda_device

        if cuda_device() is None:
            return [f"no CUDA device here: kernels are generated and compiled (nvcc, {target['arch']}) but run "
                    "only on a GPU machine (export the model)"]
        return []

    def make_runner(self, plan, lib, constants: dict, references: dict, library_path: str | None = None):
        """The plan on cuda:0, or (no device here) a runner whose calls raise NoCudaDeviceError."""
        from .library import make_cuda_runner

        return make_cuda_runner(plan, lib, constants, references, library_path)

    def export_extras(self, program, directory: str, files: list[str]) -> list[str]:
        """cuda/: per build the CUDA source and the fatbin nvcc made of it, and a README."""
        from .library import SIDE_FILES

        side = os.path.join(directory, "cuda")
        os.makedirs(side, exist_ok=True)
        for i, runner in enumerate(program.runners.values()):
            if not runner.library_path:
                continue
            src = os.path.dirname(runner.library_path)
            for name in SIDE_FILES:
                if os.path.exists(os.path.join(src, name)):
                    dst = os.path.join(side, name.replace("kernels", f"kernels_{i}", 1))
                    shutil.copyfile(os.path.join(src, name), dst)
                    files.append(dst)
        with open(os.path.join(side, "README.txt"), "w") as f:
            f.write(FOLDER_NOTE.format(arch=program.target["arch"]))
        files.append(os.path.join(side, "README.txt"))
        return files


__all__ = ["CudaPlugin", "DEFAULT_ARCH"]
