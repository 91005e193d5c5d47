"""Scale factors: Mul/Div by a constant scalar (on the scores, on q, on k or sqrt-scale on both).

Constants may be spelled as arithmetic (Sqrt/Cast/Div of shape-derived constants, as the ONNX dynamo
exporter writes them); `MatchContext.const` evaluates those subgraphs, so the exact value is kept.
"""
from __future__ import annotations

import math

from ...graph import Value
from .common import MatchContext, is_binary


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


def peel_scale(ctx: MatchContext, v: Value) -> tuple[Value, float]:
    """Strip every scalar Mul/Div directly producing `v`; returns (unscaled value, product of factors)."""
    factor = 1.0
    while True:
        got = scalar_factor(ctx, v)
        if got is None:
            return v, factor
        x, c = got
        if tuple(x.shape) != tuple(v.shape):
            return v, factor  # the constant broadcasts x to a bigger shape: keep it
        v, factor = x, factor * c
