"""TE definitions of the elementwise ops: Unary, Binary, Activation, Where, Cast.

Narrow floats (bf16/fp16) are computed in fp32 and rounded once per op, like the
reference interpreter rounds once per op.
"""
from __future__ import annotations

import math

from tvm import te, tirx

NARROW = ("bfloat16", "float16")


def compute_dtype(dtype: str) -> str:
    """The dtype arithmetic runs in: fp32 for bf16/fp16 storage, else the storage dtype."""
    return "float32" if dtype in NARROW else dtype


def load(t: te.Tensor, idx, out_shape) -> tirx.PrimExpr:
    """t[idx] with numpy broadcasting (right-aligned; size-1 dims read index 0), upcast from bf16/fp16."""
    off = len(out_shape) - len(t.shape)
    sub = [0 if int(t.shape[i]) == 1 and int(out_shape[i + off]) != 1 else idx[i + off] for i in range(len(t.shape))]
    v = t[tuple(sub)] if sub else t()
    return v.astype("float32") if str(t.dtype) in NARROW else v


def _c(cd: str, v: float):
    return tirx.const(v, cd)


UNARY = {
    "neg": lambda x, cd: -x, "exp": lambda x, cd: te.exp(x), "log": lambda x, cd: te.log(x), "sqrt": lambda x, cd: te.sqrt(x), "rsqrt": lambda x, cd: te.rsqrt(x), "tanh": lambda x, cd: te.tanh(x),
    "sigmoid": lambda x, cd: te.sigmoid(x), "abs": lambda x, cd: te.abs(x), "reciprocal": lambda x, cd: _c(cd, 1.0) / x, "erf": lambda x, cd: te.erf(x), "sin": lambda x, cd: te.sin(x),
    "cos": lambda x, cd: te.cos(x), "not": lambda x, cd: tirx.Not(x), "floor": lambda x, cd: te.floor(x), "ceil": lambda x, cd: te.ceil(x), "identity": lambda x, cd: x,
}

ACTIVATIONS = {
    "relu": lambda x, cd: tirx.max(x, _c(cd, 0.0)),
    "gelu": lambda x, cd: _c(cd, 0.5) * x * (_c(cd, 1.0) + te.erf(x * _c(cd, 1 / math.sqrt(2)))),
    "gelu_tanh": lambda x, cd: _c(cd, 0.5) * x * (_c(cd, 1.0) + te.tanh(_c(cd, math.sqrt(2 / math.pi)) * (x + _c(cd, 0.044715) * x * x * x))),
    "silu": lambda x, cd: x / (_c(cd, 1.0) + te.exp(-x)),
    "sigmoid": lambda x, cd: _c(cd, 1.0) / (_c(cd, 1.0) + te.exp(-x)),
    "tanh": lambda x, cd: te.tanh(x),
    "quick_gelu": lambda x, cd: x / (_c(cd, 1.0) + te.exp(_c(cd, -1.702) * x)),
}


def _binary_fn(fn: str, is_int: bool):
    table = {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": (lambda a, b: tirx.floordiv(a, b)) if is_int else (lambda a, b: a / b),
        "pow": te.power, "max": tirx.max, "min": tirx.min,
        "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
        "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
        "and": tirx.And, "or": tirx.Or, "xor": lambda a, b: tirx.Or(tirx.And(a, tirx.Not(b)), tirx.And(tirx.Not(a), b)),
    }
    return table[fn]


def unary(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    return te.compute(out_shape, lambda *i: UNARY[op.fn](load(x, i, out_shape), compute_dtype(str(x.dtype))).astype(out_dtype), name=name)


def activation(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    return te.compute(out_shape, lambda *i: ACTIVATIONS[op.kind](load(x, i, out_shape), compute_dtype(str(x.dtype))).astype(out_dtype), name=name)


def binary(op, ins, out_shape, out_dtype, name):
    a, b = ins
    f = _binary_fn(op.fn, str(a.dtype).startswith(("int", "uint")))
    return te.compute(out_shape, lambda *i: f(load(a, i, out_shape), load(b, i, out_shape)).astype(out_dtype), name=name)


def where(op, ins, out_shape, out_dtype, name):
    c, x, y = ins
    return te.compute(out_shape, lambda *i: tirx.Select(load(c, i, out_shape), load(x, i, out_shape),
                                                        load(y, i, out_shape)).astype(out_dtype), name=name)


def cast(op, ins, out_shape, out_dtype, name):
    (x,) = ins

    def f(*i):
        v = load(x, i, out_shape)
        if out_dtype == "bool":
            return v != tirx.const(0, compute_dtype(str(x.dtype)))
        return v.astype(out_dtype)

    return te.compute(out_shape, f, name=name)
