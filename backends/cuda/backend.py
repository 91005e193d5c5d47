"""The `cuda` target's backend: the shared core (backends/core) with the cuda plugin (plugin.py); every cuda
difference (nvcc AOT libraries, device runners, cuda/ export folder) is a plugin stage."""
from __future__ import annotations

from ..core.backend import TvmBackend
from ..core.cache import CompileCache
from .library import NoCudaDeviceError
from .plugin import CudaPlugin


class CudaBackend(TvmBackend):
    """NVIDIA GPU through TVM's CUDA codegen; kernels compiled ahead of time for sm_80 or sm_90a.
    Options: arch (sm_80 | sm_90a, default sm_90a), q_block / kv_block, cache, attention, shape_generic."""

    def __init__(self, cache: CompileCache | None = None):
        super().__init__(CudaPlugin(), cache)


__all__ = ["CudaBackend", "NoCudaDeviceError"]
