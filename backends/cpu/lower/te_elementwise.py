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
    return v.astype("float32") if t.dtype in NARROW else v


def _c(x, v: float):
    return tirx.const(v, x.dtype)


UNARY = {
    "neg": lambda x: -x, "exp": te.exp, "log": te.log, "sqrt": te.sqrt, "rsqrt": te.rsqrt, "tanh": te.tanh,
    "sigmoid": te.sigmoid, "abs": te.abs, "reciprocal": lambda x: _c(x, 1.0) / x, "erf": te.erf, "sin": te.sin,
    "cos": te.cos, "not": lambda x: tirx.Not(x), "floor": te.floor, "ceil": te.ceil, "identity": lambda x: x,
}

ACTIVATIONS = {
    "relu": lambda x: tirx.max(x, _c(x, 0.0)),
    "gelu": lambda x: _c(x, 0.5) * x * (_c(x, 1.0) + te.erf(x * _c(x, 1 / math.sqrt(2)))),
    "gelu_tanh": lambda x: _c(x, 0.5) * x * (_c(x, 1.0) + te.tanh(_c(x, math.sqrt(2 / math.pi)) * (x + _c(x, 0.044715) * x * x * x))),
    "silu": lambda x: x / (_c(x, 1.0) + te.exp(-x)),
    "sigmoid": lambda x: _c(x, 1.0) / (_c(x, 1.0) + te.exp(-x)),
    "tanh": te.tanh,
    "quick_gelu": lambda x: x / (_c(x, 1.0) + te.exp(_c(x, -1.702) * x)),
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
    return te.compute(out_shape, lambda *i: UNARY[op.fn](load(x, i, out_shape)).astype(out_dtype), name=name)


def activation(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    return te.compute(out_shape, lambda *i: ACTIVATIONS[op.kind](load(x, i, out_shape)).astype(out_dtype), name=name)


def binary(op, ins, out_shape, out_dtype, name):
    a, b = ins
    f = _binary_fn(op.fn, a.dtype.startswith(("int", "uint")))
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
            return v != tirx.const(0, v.dtype)
        return v.astype(out_dtype)

    return te.compute(out_shape, f, name=name)
