"""Numpy implementations of every IR op for the reference interpreter, keyed by op name."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .. import dims as D
from ..types import numpy_dtype
from .attention_ref import apply_rope, attention_reference

KERNELS: dict[str, Callable] = {}


def kernel(name: str):
    def deco(fn):
        KERNELS[name] = fn
        return fn

    return deco


def _erf(x):
    # vectorized erf without scipy: math.erf through np.vectorize is exact and fine for an oracle
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _f(x):
    """Compute in float64 (float32 for huge tensors) to keep the oracle accurate."""
    return x.astype(np.float64) if x.dtype.kind == "f" or "bfloat" in str(x.dtype) else x


UNARY = {
    "neg": np.negative, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "tanh": np.tanh, "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "abs": np.abs, "reciprocal": lambda x: 1.0 / x,
    "erf": _erf, "sin": np.sin, "cos": np.cos, "not": np.logical_not, "floor": np.floor, "ceil": np.ceil,
    "identity": lambda x: x,
}
BINARY = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "pow": np.power, "max": np.maximum, "min": np.minimum,
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
    "and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
}
ACT = {
    "relu": lambda x: np.maximum(x, 0), "gelu": lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2))),
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3))),
    "silu": lambda x: x / (1 + np.exp(-x)), "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh,
    "quick_gelu": lambda x: x / (1 + np.exp(-1.702 * x)),
}


@kernel("Constant")
def _constant(op, inputs, node, ctx):
    return [ctx.constants[op.key]]


@kernel("Unary")
def _unary(op, inputs, node, ctx):
    (x,) = inputs
    return [UNARY[op.fn](_f(x)).astype(x.dtype)]


@kernel("Binary")
def _binary(op, inputs, node, ctx):
    a, b = inputs
    if op.fn == "div":
        if a.dtype.kind in "iu":
            out = np.floor_divide(a, b)  # ONNX/torch integer division on non-negative shapes
        else:
            out = _f(a) / _f(b)
    else:
        out = BINARY[op.fn](_f(a), _f(b))
    dtype = np.bool_ if out.dtype == np.bool_ else a.dtype
    return [np.asarray(out).astype(dtype)]


@kernel("Activation")
def _activation(op, inputs, node, ctx):
    (x,) = inputs
    return [ACT[op.kind](_f(x)).astype(x.dtype)]


@kernel("Where")
def _where(op, inputs, node, ctx):
    c, x, y = inputs
    return [np.where(c, x, y)]


@kernel("MatMul")
def _matmul(op, inputs, node, ctx):
    a, b = inputs
    return [(_f(a) @ _f(b)).astype(a.dtype)]


@kernel("Linear")
def _linear(op, inputs, node, ctx):
    x, w = inputs[0], inputs[1]
    y = _f(x) @ _f(w)
    if op.has_bias:
        y = y + _f(inputs[2])
    return [y.astype(x.dtype)]


@kernel("Softmax")
def _softmax(op, inputs, node, ctx):
    (x,) = inputs
    z = _f(x)
    m = np.max(z, axis=op.axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(z - m)
    s = e.sum(axis=op.axis, keepdims=True)
    return [np.divide(e, s, out=np.zeros_like(e), where=s > 0).astype(x.dtype)]


@kernel("LayerNorm")
def _layernorm(op, inputs, node, ctx):
    x = _f(inputs[0])
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    y = (x - mu) / np.sqrt(var + op.eps)
    i = 1
    if op.has_weight:
        y = y * _f(inputs[i])
        i += 1
    if op.has_bias:
        y = y + _f(inputs[i])
    return [y.astype(inputs[0].dtype)]


@kernel("RMSNorm")
def _rmsnorm(op, inputs, node, ctx):
    x = _f(inputs[0])
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + op.eps)
    if op.has_weight:
        y = y * _f(inputs[1])
    return [y.astype(inputs[0].dtype)]


@kernel("BatchNorm")
def _batchnorm(op, inputs, node, ctx):
    x = _f(inputs[0])
    per_channel = (-1,) + (1,) * (x.ndim - 2)   # (C,) statistics broadcast over N and the spatial dims
    mean, var = (_f(t).reshape(per_channel) for t in inputs[1:3])
    y = (x - mean) / np.sqrt(var + op.eps)
    i = 3
    if op.has_weight:
        y = y * _f(inputs[i]).reshape(per_channel)
        i += 1
    if op.has_bias:
        y = y + _f(inputs[i]).reshape(per_channel)
    return [y.astype(inputs[0].dtype)]


@kernel("Reduce")
def _reduce(op, inputs, node, ctx):
    (x,) = inputs
    fn = {"sum": np.sum, "mean": np.mean, "max": np.max, "min": np.min, "prod": np.prod}[op.fn]
    # over an empty axis max/min give -inf/+inf (ONNX ReduceMax/ReduceMin's empty-set rule), mean NaN (0/0)
    extra = {"max": {"initial": -np.inf}, "min": {"initial": np.inf}}.get(op.fn, {}) if x.size == 0 else {}
    if x.size == 0 and op.fn == "mean":
        fn = lambda a, **kw: np.sum(a, **kw) * np.nan  # noqa: E731 - np.mean would warn 'Mean of empty slice'
    y = fn(_f(x), axis=tuple(op.axes), keepdims=op.keepdims, **extra)
    return [np.asarray(y).astype(x.dtype)]


@kernel("Reshape")
def _reshape(op, inputs, node, ctx):
    (x,) = inputs
    return [x.reshape([d if d == -1 else D.evaluate(d, ctx.dims) for d in op.shape])]


@kernel("Transpose")
def _transpose(op, inputs, node, ctx):
    return [np.ascontiguousarray(inputs[0].transpose(op.perm))]


@kernel("Concat")
def _concat(op, inputs, node, ctx):
    return [np.concatenate(inputs, axis=op.axis)]


@kernel("Slice")
def _slice(op, inputs, node, ctx):
    (x,) = inputs
    idx = [slice(None)] * x.ndim
    start = D.evaluate(op.start, ctx.dims)
    stop = None if op.stop is None else D.evaluate(op.stop, ctx.dims)
    idx[op.axis] = slice(start, stop, op.step)
    return [x[tuple(idx)]]


@kernel("Gather")
def _gather(op, inputs, node, ctx):
    data, idx = inputs
    return [np.take(data, idx, axis=op.axis)]


@kernel("IndexCopy")
def _index_copy(op, inputs, node, ctx):
    data, idx, src = inputs
    out = np.array(data, copy=True)
    where = [slice(None)] * out.ndim
    where[op.axis % out.ndim] = np.asarray(idx).astype(np.int64)
    out[tuple(where)] = src
    return [out]


@kernel("Expand")
def _expand(op, inputs, node, ctx):
    (x,) = inputs
    shape = list(op.shape)
    off = len(shape) - x.ndim
    shape = [x.shape[i - off] if d == -1 else D.evaluate(d, ctx.dims) for i, d in enumerate(shape)]
    return [np.broadcast_to(x, shape).copy()]


@kernel("Cast")
def _cast(op, inputs, node, ctx):
    return [inputs[0].astype(numpy_dtype(op.dtype))]


@kernel("Rotary")
def _rotary(op, inputs, node, ctx):
    x, c, s = inputs
    return [apply_rope(_f(x), _f(c), _f(s), op.style, op.rotary_dim).astype(x.dtype)]


@kernel("Attention")
def _attention(op, inputs, node, ctx):
    return attention_reference(op.spec, dict(zip(op.spec.input_names(), inputs)))
