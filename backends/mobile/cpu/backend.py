"""`mobile-cpu` backend: the shared core (backends/core) with the mobile-cpu plugin; exports carry the
aarch64 library, its LLVM IR and assembly."""
from __future__ import annotations

import os
import shutil

from ...base import Executable
from ...core.backend import TvmBackend
from ...core.cache import CompileCache
from .cross import source_paths
from .plugin import MobileCpuPlugin


class MobileCpuBackend(TvmBackend):
    """aarch64 NEON, cross-compiled and cross-linked; calls in this process run under qemu-aarch64."""

    def __init__(self, cache: CompileCache | None = None):
        super().__init__(MobileCpuPlugin(), cache)

    def export(self, executable: Executable, directory: str) -> list[str]:
        """The core's folder (plans, aarch64 kernels_<i>.so, constants, runtime, run.py) plus each library's
        kernel sources, kernels_<i>.ll (LLVM IR) and kernels_<i>.s (aarch64 assembly)."""
        files = super().export(executable, directory)
        program = executable.artifacts["program"]
        for i, runner in enumerate(program.runners.values()):
            if runner.library_path:   # a cached/loaded build: the core copied the .so alone; its sources sit beside it
                for src in source_paths(runner.library_path):
                    shutil.copyfile(src, os.path.join(directory, f"kernels_{i}{os.path.splitext(src)[1]}"))
        sources = [s for f in files if f.endswith(".so") for s in source_paths(f)]
        return files + [s for s in sources if s not in files]
