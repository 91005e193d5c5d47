"""Scale factors: Mul/Div by a constant scalar (on the scores, on q, on k or sqrt-scale on both; on q or k
possibly before the layout ops that split heads).

Constants may be spelled as arithmetic (Sqrt/Cast/Div of shape-derived constants, as the ONNX dynamo
exporter writes them); `MatchContext.const` evaluates those subgraphs, so the exact value is kept.
"""
from __future__ import annotations

import math

from ...graph import Node, Value
from .common import Emitter, MatchContext, is_binary, producer_kind

# value-preserving data movement a scalar factor commutes with
LAYOUT_OPS = ("Reshape", "Transpose")


def scalar_factor(ctx: MatchContext, v: Value) -> tuple[Value, float] | None:
    """(x, c) when v = x * c, c * x or x / c (c a finite nonzero constant scalar); else None."""
    if not is_binary(v, "mul", "div"):
        return None
    n = v.producer
    a, b = n.inputs
    if n.op.fn == "div":
        c = ctx.scalar(b)
        return (a, 1.0 / c) if c is not None and math.isfinite(c) and c != 0 else None
    for x, const in ((a, b), (b, a)):
        c = ctx.scalar(const)
        if c is not None and math.isfinite(c) and c != 0 and ctx.const(x) is None:
            if tuple(const.shape) and len(const.shape) > len(x.shape):
                return None  # the constant would add axes: not a pure scale
            return x, c
    return None


def peel_scale(ctx: MatchContext, v: Value, em: Emitter | None = None) -> tuple[Value, float]:
    """Strip every scalar Mul/Div producing `v`; returns (unscaled value, product of factors).

    With an emitter, a factor under layout ops is peeled too (OPT: `q_proj(x) * scaling`, then the head
    split view/transpose): a scalar commutes with data movement, so the layout ops are re-applied to the
    unscaled value and the factor moves into the spec's scale."""
    factor = 1.0
    while True:
        got = scalar_factor(ctx, v)
        if got is not None and tuple(got[0].shape) == tuple(v.shape):
            v, factor = got[0], factor * got[1]
            continue
        if got is not None or em is None:
            return v, factor  # (a constant that broadcasts x to a bigger shape is not a pure scale: kept)
        under = scaled_under_layout(ctx, v)
        if under is None:
            return v, factor
        x, c, layout = under
        for n in reversed(layout):
            x = em.reshape(x, n.outputs[0].shape) if n.op.op_name == "Reshape" else em.transpose(x, n.op.perm)
        v, factor = x, factor * c


def scaled_under_layout(ctx: MatchContext, v: Value) -> tuple[Value, float, list[Node]] | None:
    """(x, c, layout nodes from v down) when v = layout(x * c) through Reshape/Transpose only."""
    layout: list[Node] = []
    while producer_kind(v) in LAYOUT_OPS and len(layout) < 8:
        layout.append(v.producer)
        v = v.producer.inputs[0]
    got = scalar_factor(ctx, v) if layout else None
    if got is None or tuple(got[0].shape) != tuple(v.shape):
        return None
    return got[0], got[1], layout
