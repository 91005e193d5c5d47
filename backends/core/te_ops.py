"""The op table: IR op name -> TE builder `fn(op, ins, out_shape, out_dtype, name) -> te.Tensor`.

Anchors (Linear/MatMul) are built by groups.py because their operands are viewed as 3-D.
"""
from __future__ import annotations

from typing import Callable

from tvm import te

from .symbolic import is_one

from . import te_elementwise as ew
from . import te_layout as lay
from . import te_norm as nrm
from . import te_conv
from . import te_scan
from .te_elementwise import load

TE_OPS: dict[str, Callable] = {
    "Unary": ew.unary,
    "Binary": ew.binary,
    "Activation": ew.activation,
    "Where": ew.where,
    "Cast": ew.cast,
    "Transpose": lay.transpose,
    "Concat": lay.concat,
    "Gather": lay.gather,
    "Expand": lay.expand,
    "Rotary": lay.rotary,
    "Softmax": nrm.softmax,
    "LayerNorm": nrm.layer_norm,
    "RMSNorm": nrm.rms_norm,
    "BatchNorm": nrm.batch_norm,
    "Reduce": nrm.reduce,
    "CumSum": te_scan.cumsum,
    "Pool": te_conv.pool,
    # Slice is bound per shape (its start may be symbolic): see groups.py
}


def batched_matmul_full(a: te.Tensor, b: te.Tensor, out_shape, out_dtype: str, name: str) -> te.Tensor:
    """numpy-semantics matmul with arbitrary batch broadcasting (used when operands cannot be viewed as 3-D)."""
    k_len = a.shape[-1]
    k = te.reduce_axis((0, k_len), "k")
    nb = len(out_shape) - 2

    def f(*i):
        batch = i[:nb]
        ab = [0 if is_one(a.shape[j]) else batch[j + nb - (len(a.shape) - 2)] for j in range(len(a.shape) - 2)]
        bb = [0 if is_one(b.shape[j]) else batch[j + nb - (len(b.shape) - 2)] for j in range(len(b.shape) - 2)]
        av = a[tuple(ab) + (i[nb], k)].astype("float32")
        bv = b[tuple(bb) + (k, i[nb + 1])].astype("float32")
        return te.sum(av * bv, axis=k)

    acc = te.compute(out_shape, f, name=name + "_acc")
    return te.compute(out_shape, lambda *i: acc[i].astype(out_dtype), name=name)


__all__ = ["TE_OPS", "batched_matmul_full", "load"]
