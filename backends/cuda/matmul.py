"""Linear/MatMul on the cuda target: weights stay [K, N] (coalesced rows for the k-loop), an fp32 accumulator,
and a GPU schedule: the tensor-core schedule (tensor_core/) when the shape and dtype fit it, else dlight's
GPU matmul/GEMV rules."""
from __future__ import annotations

from ..core.matmul import PlainMatmul
from .schedules import apply_rules


class CudaMatmul(PlainMatmul):
    """The MatmulStrategy of the cuda target (see backends/core/plugin.py): the core's plain [K, N] compute with
    an fp32 accumulator, scheduled on tensor cores where the shape and dtype fit, else by dlight's rules."""

    def __init__(self, arch_of):
        super().__init__()
        self._arch_of = arch_of   # the arch of the build in progress (set by the plugin's tvm_target)

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None, tile: dict | None = None) -> None:
        from .tensor_core import try_tensor_core

        if try_tensor_core(sch, acc, self._arch_of()):
            return
        apply_rules(sch, "matmul", self._arch_of())
