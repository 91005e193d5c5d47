"""The default MatmulStrategy of a target plugin: weights kept [K, N], an fp32 accumulator, the target's own
"generic" schedule. A target with packed panels or tensor cores overrides `TargetPlugin.matmul`."""
from __future__ import annotations

import numpy as np
from tvm import te, tirx


def _is_one(d) -> bool:
    return isinstance(d, (int, tirx.IntImm)) and int(d) == 1


class PlainMatmul:
    """acc[bt, m, n] = sum_k a[bt, m, k] * b[(bt,) k, n] in fp32; constant weights stay [K, N]; no gated panels."""

    gate_cols = 0   # the gated MLP stays two matmuls + an elementwise kernel
    panel = 0

    def __init__(self, schedule=None):
        self._schedule = schedule   # fn(sch, root block name) applied to the matmul's PrimFunc (None: unscheduled)

    def packed_shape(self, k: int, n: int) -> tuple[int, ...]:
        return (k, n)

    def pack_weight(self, w: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(w)

    def pack_gated(self, w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray:
        raise NotImplementedError("a plain matmul builds no gated panels (gate_cols = 0)")

    def compute(self, a, b, n, packed: bool, name: str):
        bt, m, k_len = a.shape
        k = te.reduce_axis((0, k_len), "k")
        if packed:
            return te.compute((bt, m, n), lambda i, r, c: te.sum(
                a[i, r, k].astype("float32") * b[k, c].astype("float32"), axis=k), name=name)
        shared = _is_one(b.shape[0])
        return te.compute((bt, m, n), lambda i, r, c: te.sum(
            a[i, r, k].astype("float32") * b[0 if shared else i, k, c].astype("float32"), axis=k), name=name)

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None, tile: dict | None = None) -> None:
        if self._schedule is not None:
            self._schedule(sch, root)
