"""Vector-friendly math used inside the kernels (pure TIR expressions).

``T.exp`` on vectors lowers to a scalarised libm call on x86, so the kernels use a
polynomial exp2 (Cephes exp2f, relative error ~2e-7) that LLVM vectorises.
"""
from __future__ import annotations

import math

from tvm import tirx
from tvm.script import tirx as T

LOG2E = 1.4426950408889634
NEG_INF = float("-inf")

# Cephes exp2f minimax coefficients on [-0.5, 0.5]: 2^x = 1 + x * P(x)
_EXP2_P = (1.535336188319500e-4, 1.339887440266574e-3, 9.618437357674640e-3,
           5.550332471162809e-2, 2.402264791363012e-1, 6.931472028550421e-1)


def f32(x: float):
    return tirx.const(float(x), "float32")


def fast_exp2(x):
    """2**x for float32 x; exactly 0 for x < -126 (and for -inf)."""
    xc = T.min(T.max(x, f32(-126.0)), f32(126.0))
    n = T.floor(xc + f32(0.5))
    f = xc - n
    p = f32(_EXP2_P[0])
    for c in _EXP2_P[1:]:
        p = p * f + f32(c)
    p = p * f + f32(1.0)
    bits = T.shift_left(T.Cast("int32", n) + 127, 23)
    r = p * T.reinterpret("float32", bits)
    return T.Select(x < f32(-126.0), f32(0.0), r)


def fast_exp(x):
    return fast_exp2(x * f32(LOG2E))


def fast_tanh(x):
    """tanh via exp: 1 - 2 / (exp(2x) + 1); abs error ~1e-7, saturates correctly."""
    xc = T.min(T.max(x, f32(-20.0)), f32(20.0))
    e = fast_exp2(xc * f32(2.0 * LOG2E))
    return f32(1.0) - f32(2.0) / (e + f32(1.0))


def is_neg_inf(x):
    return x == f32(NEG_INF)


__all__ = ["LOG2E", "NEG_INF", "f32", "fast_exp2", "fast_exp", "fast_tanh", "math"]
