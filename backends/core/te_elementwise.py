"""TE definitions of the elementwise ops: Unary, Binary, Activation, Where, Cast.

Narrow floats (bf16/fp16) are computed in fp32 and rounded once per op, like the
reference interpreter rounds once per op.
"""
from __future__ import annotations

import math

from tvm import te, tirx

from ...ir.kernels.pow_exponents import fast_pow_exponent
from .symbolic import is_one

NARROW = ("bfloat16", "float16")


def compute_dtype(dtype: str) -> str:
    """The dtype arithmetic runs in: fp32 for bf16/fp16 storage, else the storage dtype."""
    return "float32" if dtype in NARROW else dtype


def load(t: te.Tensor, idx, out_shape) -> tirx.PrimExpr:
    """t[idx] with numpy broadcasting (right-aligned; size-1 dims read index 0), upcast from bf16/fp16."""
    off = len(out_shape) - len(t.shape)
    sub = [0 if is_one(t.shape[i]) and not is_one(out_shape[i + off]) else idx[i + off] for i in range(len(t.shape))]
    v = t[tuple(sub)] if sub else t()
    return v.astype("float32") if str(t.dtype) in NARROW else v


def _c(cd: str, v: float):
    return tirx.const(v, cd)


# exp(x) overflows fp32 above this; the polynomial would saturate instead, so this gives inf like libm
_EXP_OVERFLOW = 88.72283935546875
_LOG2E = 1.4426950408889634
# Cephes exp2f minimax coefficients on [-0.5, 0.5]: 2^f = 1 + f * P(f) (relative error ~2e-7)
_EXP2_P = (1.535336188319500e-4, 1.339887440266574e-3, 9.618437357674640e-3,
           5.550332471162809e-2, 2.402264791363012e-1, 6.931472028550421e-1)


def vexp(x, cd: str):
    """exp(x) that LLVM vectorizes. On x86, te.exp of a vector becomes one scalar expf call per lane
    (measured: the SiLU epilogue of the gate projection cost 30% of its matmul). fp32 splits
    x*log2(e) = n + f, evaluates 2^f by polynomial and builds 2^n in the exponent bits; results
    below 2^-126 flush to 0, above the fp32 range give inf, NaN stays NaN. Other dtypes keep te.exp."""
    if cd != "float32":
        return te.exp(x)
    t = tirx.min(tirx.max(x * _c(cd, _LOG2E), _c(cd, -126.0)), _c(cd, 128.0))
    n = te.floor(t + _c(cd, 0.5))
    f = t - n
    p = _c(cd, _EXP2_P[0])
    for coef in _EXP2_P[1:]:
        p = p * f + _c(cd, coef)
    p = p * f + _c(cd, 1.0)
    # 2^n as 2^h * 2^(n-h) so both factors stay normal floats over n in [-126, 128]
    ni = n.astype("int32")
    h = tirx.shift_right(ni, 1)
    scale_h = tirx.reinterpret("float32", tirx.shift_left(h + 127, 23))
    scale_l = tirx.reinterpret("float32", tirx.shift_left(ni - h + 127, 23))
    r = tirx.Select(x * _c(cd, _LOG2E) < _c(cd, -126.0), _c(cd, 0.0), p * scale_h * scale_l)
    r = tirx.Select(x > _c(cd, _EXP_OVERFLOW), tirx.const(float("inf"), cd), r)
    return tirx.Select(tirx.isnan(x), x, r)


# Eigen's generic_fast_erf_float (also TVM's topi fast_erf): erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (erf is
# +-1 in fp32 outside), a few ulp
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)


def verf(x, cd: str):
    """erf(x) that LLVM vectorizes (te.erf becomes one scalar erff call per lane on x86: a Linear+bias+GELU
    kernel at 256x512x1376 spent 70% of its time there). Clamps x, so NaN is not propagated: GELU's own x
    factor carries it. Other dtypes keep te.erf."""
    if cd != "float32":
        return te.erf(x)
    x = tirx.min(tirx.max(x, _c(cd, -4.0)), _c(cd, 4.0))
    x2 = x * x
    p = _c(cd, _ERF_P[0])
    for coef in _ERF_P[1:]:
        p = p * x2 + _c(cd, coef)
    q = _c(cd, _ERF_Q[0])
    for coef in _ERF_Q[1:]:
        q = q * x2 + _c(cd, coef)
    return x * p / q


UNARY = {
    "neg": lambda x, cd: -x, "exp": lambda x, cd: vexp(x, cd), "log": lambda x, cd: te.log(x), "sqrt": lambda x, cd: te.sqrt(x), "rsqrt": lambda x, cd: te.rsqrt(x), "tanh": lambda x, cd: te.tanh(x),
    "sigmoid": lambda x, cd: _c(cd, 1.0) / (_c(cd, 1.0) + vexp(-x, cd)), "abs": lambda x, cd: te.abs(x), "reciprocal": lambda x, cd: _c(cd, 1.0) / x, "erf": lambda x, cd: te.erf(x), "sin": lambda x, cd: te.sin(x),
    "cos": lambda x, cd: te.cos(x), "not": lambda x, cd: tirx.Not(x), "floor": lambda x, cd: te.floor(x), "ceil": lambda x, cd: te.ceil(x), "identity": lambda x, cd: x,
}

ACTIVATIONS = {
    "relu": lambda x, cd: tirx.max(x, _c(cd, 0.0)),
    "gelu": lambda x, cd: _c(cd, 0.5) * x * (_c(cd, 1.0) + verf(x * _c(cd, 1 / math.sqrt(2)), cd)),
    "gelu_tanh": lambda x, cd: _c(cd, 0.5) * x * (_c(cd, 1.0) + te.tanh(_c(cd, math.sqrt(2 / math.pi)) * (x + _c(cd, 0.044715) * x * x * x))),
    "silu": lambda x, cd: x / (_c(cd, 1.0) + vexp(-x, cd)),
    "sigmoid": lambda x, cd: _c(cd, 1.0) / (_c(cd, 1.0) + vexp(-x, cd)),
    "tanh": lambda x, cd: te.tanh(x),
    "quick_gelu": lambda x, cd: x / (_c(cd, 1.0) + vexp(_c(cd, -1.702) * x, cd)),
}


def _binary_fn(fn: str, is_int: bool):
    table = {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": (lambda a, b: tirx.floordiv(a, b)) if is_int else (lambda a, b: a / b),
        "pow": te.power, "max": tirx.max, "min": tirx.min,
        "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
        "and": tirx.And, "or": tirx.Or, "xor": lambda a, b: _xor(a, b),
    }
    return table[fn]


# x ** c for the constant exponents torch's CPU pow kernel special-cases (aten/src/ATen/native/cpu/PowKernel.cpp:
# 2, 3, 0.5, -0.5, -1, -2) plus 0, 1 and 4: multiplies, sqrt or a reciprocal instead of one powf call per element
# (x.pow(2) over 98k floats measured 17x a two-multiply kernel). Which exponents: ir.kernels.pow_exponents.
_CONSTANT_POW = {
    0.0: lambda x, cd: tirx.const(1, cd), 1.0: lambda x, cd: x,
    2.0: lambda x, cd: x * x, 3.0: lambda x, cd: x * x * x, 4.0: lambda x, cd: (x * x) * (x * x),
    0.5: lambda x, cd: te.sqrt(x), -0.5: lambda x, cd: te.rsqrt(x),
    -1.0: lambda x, cd: _c(cd, 1.0) / x, -2.0: lambda x, cd: _c(cd, 1.0) / (x * x),
}


def constant_pow(exponent: float, base_dtype: str):
    """A Binary-pow TE builder for a known scalar exponent, or None when pow must stay a pow call.

    The builder reads only the base (ins[0]); the exponent operand is not loaded."""
    if not fast_pow_exponent(exponent, base_dtype):   # the decision the cost report reads too (ir.kernels)
        return None
    f = _CONSTANT_POW[exponent]

    def build(op, ins, out_shape, out_dtype, name):
        x = ins[0]
        cd = compute_dtype(str(x.dtype))
        return te.compute(out_shape, lambda *i: f(load(x, i, out_shape), cd).astype(out_dtype), name=name)

    return build


def unary(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    return te.compute(out_shape, lambda *i: UNARY[op.fn](load(x, i, out_shape), compute_dtype(str(x.dtype))).astype(out_dtype), name=name)


def activation(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    return te.compute(out_shape, lambda *i: ACTIVATIONS[op.kind](load(x, i, out_shape), compute_dtype(str(x.dtype))).astype(out_dtype), name=name)


def _ieee_compare(fn: str, f):
    """Float compares with IEEE NaN semantics spelled out. TVM's simplifier assumes ordered floats: it folds
    `x != x` to False and `x == x`, `x <= x` to True (wrong for NaN; ONNX IsNaN imports as x != x, and two
    structurally equal operands appear after inlining), and rewrites `not (a < b)` into `b <= a` (True for
    NaN before, False after). With the NaN terms each rewrite stays exact; they are no-ops on other values."""
    if fn == "ne":
        return lambda a, b: tirx.Or(f(a, b), tirx.Or(tirx.isnan(a), tirx.isnan(b)))
    return lambda a, b: tirx.And(f(a, b), tirx.Not(tirx.Or(tirx.isnan(a), tirx.isnan(b))))


# bool operands: TVM 0.27 emits eq/ne on bool as an LLVM fcmp on i1, which LLVM's verifier rejects
_BOOL_COMPARE = {"eq": lambda a, b: tirx.Not(_xor(a, b)), "ne": lambda a, b: _xor(a, b)}


def _xor(a, b):
    return tirx.Or(tirx.And(a, tirx.Not(b)), tirx.And(tirx.Not(a), b))


def binary(op, ins, out_shape, out_dtype, name):
    a, b = ins
    dt = str(a.dtype)
    f = _binary_fn(op.fn, dt.startswith(("int", "uint")))
    if dt == "bool" and op.fn in _BOOL_COMPARE:
        f = _BOOL_COMPARE[op.fn]
    elif dt.startswith(("float", "bfloat")) and op.fn in ("eq", "ne", "lt", "le", "gt", "ge"):
        f = _ieee_compare(op.fn, f)
    return te.compute(out_shape, lambda *i: f(load(a, i, out_shape), load(b, i, out_shape)).astype(out_dtype), name=name)


def where(op, ins, out_shape, out_dtype, name):
    c, x, y = ins
    return te.compute(out_shape, lambda *i: tirx.Select(load(c, i, out_shape), load(x, i, out_shape),
                                                        load(y, i, out_shape)).astype(out_dtype), name=name)


def cast(op, ins, out_shape, out_dtype, name):
    (x,) = ins

    def f(*i):
        v = load(x, i, out_shape)
        if out_dtype == "bool":  # a bool source is used as is (bool != False would be an fcmp on i1)
            return v if str(x.dtype) == "bool" else v != tirx.const(0, compute_dtype(str(x.dtype)))
        return v.astype(out_dtype)

    return te.compute(out_shape, f, name=name)
