"""The `cpu` target: whole IR graphs lowered by the shared core (backends/core) with the cpu plugin.

Non-attention ops are fused into small groups, each defined in TE and given a real schedule
(packed register-tiled matmuls, vectorized parallel elementwise and row kernels); Attention ops
run the hand-scheduled flash kernels (backends/cpu/attention) or a noted fallback.
"""
from __future__ import annotations

from ..core.backend import TvmBackend
from ..core.cache import CompileCache
from ..core.errors import CpuLoweringError
from ..core.program import Program, decompose_variants
from .plugin import CpuPlugin

CpuProgram = Program


class CpuBackend(TvmBackend):
    """Host CPU through TVM/LLVM: fused scheduled kernels + flash attention, fp32 and bf16."""

    def __init__(self, cache: CompileCache | None = None):
        super().__init__(CpuPlugin(), cache)


__all__ = ["CpuBackend", "CpuLoweringError", "CpuProgram", "decompose_variants"]
