"""Softcap: scores -> c * tanh(scores / c) (Gemma-2 style), spelled with Div or Mul by 1/c."""
from __future__ import annotations

import math

from ...graph import Value
from .common import MatchContext, is_unary
from .scale import scalar_factor


def match_softcap(ctx: MatchContext, v: Value) -> tuple[Value, float] | None:
    """(x, c) when v = c * tanh(x / c); None otherwise (also when the two constants disagree)."""
    outer = scalar_factor(ctx, v)
    if outer is None:
        return None
    t, c = outer
    if not is_unary(t, "tanh") or c <= 0:
        return None
    inner = scalar_factor(ctx, t.producer.inputs[0])
    if inner is None:
        return None
    x, inv = inner
    if not math.isclose(inv * c, 1.0, rel_tol=1e-6):
        return None
    return x, c
