"""Reference semantics of FusedAttention: the attention reference followed by the epilogue (float64)."""
from __future__ import annotations

import numpy as np

from .attention_ref import attention_reference
from .kernels import kernel


@kernel("FusedAttention")
def _fused_attention(op, inputs, node, ctx):
    named = dict(zip(op.input_names(), inputs))
    outs = attention_reference(op.spec, {k: named[k] for k in op.spec.input_names()})
    o = np.asarray(outs[0], np.float64)
    if op.spec.layout == "bhsd":
        o = o.transpose(0, 2, 1, 3)
    y = o.reshape(o.shape[0], o.shape[1], -1) @ np.asarray(named["out_weight"], np.float64)
    if op.has_out_bias:
        y = y + np.asarray(named["out_bias"], np.float64)
    if op.has_residual:
        y = y + np.asarray(named["residual"], np.float64)
    return [y.astype(outs[0].dtype)] + list(outs[1:])
