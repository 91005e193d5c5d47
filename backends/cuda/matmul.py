"""Linear/MatMul on the cuda target: weights stay [K, N] (coalesced rows for the k-loop), an fp32 accumulator,
and a GPU schedule: the tensor-core schedule (tensor_core/) when the shape and dtype fit it, else dlight's
GPU matmul/GEMV rules."""
from __future__ import annotations

import numpy as np
from tvm import te, tirx

from .schedules import apply_rules


def _is_one(d) -> bool:
    return isinstance(d, (int, tirx.IntImm)) and int(d) == 1


class CudaMatmul:
    """The MatmulStrategy of the cuda target (see backends/core/plugin.py)."""

    gate_cols = 0   # no interleaved gate/up panels: the gated MLP stays two matmuls + an elementwise kernel
    panel = 0

    def __init__(self, arch_of):
        self._arch_of = arch_of   # the arch of the build in progress (set by the plugin's tvm_target)

    def packed_shape(self, k: int, n: int) -> tuple[int, ...]:
        return (k, n)

    def pack_weight(self, w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w)

    def pack_gated(self, w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray:
        raise NotImplementedError("the cuda target builds no gated panels (gate_cols = 0)")

    def compute(self, a, b, n, packed: bool, name: str):
        """acc[bt, m, n] = sum_k a[bt, m, k] * b[(bt,) k, n] in fp32; b is [K, N] (packed) or [1|Bt, K, N]."""
        bt, m, k_len = a.shape
        k = te.reduce_axis((0, k_len), "k")
        if packed:
            return te.compute((bt, m, n), lambda i, r, c: te.sum(
                a[i, r, k].astype("float32") * b[k, c].astype("float32"), axis=k), name=name)
        shared = _is_one(b.shape[0])
        return te.compute((bt, m, n), lambda i, r, c: te.sum(
            a[i, r, k].astype("float32") * b[0 if shared else i, k, c].astype("float32"), axis=k), name=name)

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None) -> None:
        from .tensor_core import try_tensor_core

        if try_tensor_core(sch, acc, self._arch_of()):
            return
        apply_rules(sch, "matmul", self._arch_of())
