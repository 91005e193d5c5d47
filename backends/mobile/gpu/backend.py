"""The `mobile-gpu` target: the shared core (backends/core) with the OpenCL plugin (plugin.py), built per input
shape, run through pyopencl (TVM's wheel has no OpenCL runtime), exported as OpenCL C + plan + launch table.
"""
from __future__ import annotations

from ...core.backend import TvmBackend
from ...core.cache import CompileCache
from .plugin import MobileGpuPlugin


class MobileGpuBackend(TvmBackend):
    """OpenCL for Adreno/Mali-class GPUs: scheduled TE kernels, tiled matmuls, a local-memory flash kernel."""

    def __init__(self, cache: CompileCache | None = None):
        super().__init__(MobileGpuPlugin(), cache)


__all__ = ["MobileGpuBackend"]
