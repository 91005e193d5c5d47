"""Elementwise math, matrix products, softmax, normalizations, reductions and CumSum (domain ai.onnx)."""
from __future__ import annotations

import numpy as np

from ...ir.ops import (Activation, BatchNorm, Binary, CumSum, LayerNorm, Linear, MatMul, Reduce, Reshape, RMSNorm, Softmax,
                        Unary, Where)
from ...ir import dims as D
from .context import ImportContext
from .registry import converter

# ONNX op -> IR Unary fn (table: one line each)
UNARY = {"Sqrt": "sqrt", "Reciprocal": "reciprocal", "Neg": "neg", "Exp": "exp", "Log": "log", "Tanh": "tanh",
         "Erf": "erf", "Abs": "abs", "Sin": "sin", "Cos": "cos", "Floor": "floor", "Ceil": "ceil", "Not": "not"}
# ONNX op -> IR Binary fn
BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "Equal": "eq", "Less": "lt",
          "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge", "And": "and", "Or": "or", "Xor": "xor"}
# ONNX op -> IR Activation kind
ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid"}
# ONNX reduce op -> (IR fn, first opset where `axes` is an input instead of an attribute)
REDUCTIONS = {"ReduceMean": ("mean", 18), "ReduceSum": ("sum", 13), "ReduceMax": ("max", 18),
              "ReduceMin": ("min", 18), "ReduceProd": ("prod", 18)}


def _unary(fn: str):
    def convert(ctx: ImportContext, node):
        return [ctx.add1(Unary(fn), [ctx.input(node, 0)])]
    return convert


def _binary(fn: str):
    def convert(ctx: ImportContext, node):
        a, b = ctx.input(node, 0), ctx.input(node, 1)
        if fn == "pow" and b.dtype != a.dtype:  # ONNX Pow allows a differently typed exponent
            b = ctx.cast(b, a.dtype)
        return [ctx.add1(Binary(fn), [a, b])]
    return convert


def _activation(kind: str):
    def convert(ctx: ImportContext, node):
        return [ctx.add1(Activation(kind), [ctx.input(node, 0)])]
    return convert


for _op, _fn in UNARY.items():
    converter("", _op)(_unary(_fn))
for _op, _fn in BINARY.items():
    converter("", _op)(_binary(_fn))
for _op, _kind in ACTIVATIONS.items():
    converter("", _op)(_activation(_kind))


@converter("", "Max")
@converter("", "Min")
@converter("", "Sum")
def convert_variadic(ctx: ImportContext, node):
    """Max/Min/Sum over any number of inputs: a chain of binary ops."""
    fn = {"Max": "max", "Min": "min", "Sum": "add"}[node.op_type]
    acc = ctx.input(node, 0)
    for i in range(1, len(node.input)):
        acc = ctx.add1(Binary(fn), [acc, ctx.input(node, i)])
    return [acc]


@converter("", "Gelu", since=20)
def convert_gelu(ctx: ImportContext, node):
    approx = ctx.attr(node, "approximate", "none")
    ctx.check(approx in ("none", "tanh"), f"attribute approximate={approx!r} is not 'none' or 'tanh'")
    return [ctx.add1(Activation("gelu" if approx == "none" else "gelu_tanh"), [ctx.input(node, 0)])]


@converter("", "Where")
def convert_where(ctx: ImportContext, node):
    """Where; a constant all-True/all-False condition selects one branch (e.g. the fully-masked-row guard
    of Attention's expanded form when no row is masked), leaving clean primitives for lift-attention."""
    cond = ctx.const(node, 0)
    ins = [ctx.input(node, i) for i in range(3)]
    if cond is not None and cond.dtype == bool and (cond.all() or not cond.any()):
        pick = ins[1] if cond.all() else ins[2]
        out = ctx.add1(Where(), ins)
        if pick.type == out.type:  # the branch already has the result's shape and dtype
            return [pick]
        return [out]
    return [ctx.add1(Where(), ins)]


def _rank2(ctx: ImportContext, v, front: bool):
    """Promote a rank-1 matmul operand to rank 2 (ONNX/numpy matmul rules)."""
    return ctx.add1(Reshape((1, v.shape[0]) if front else (v.shape[0], 1)), [v])


@converter("", "MatMul")
def convert_matmul(ctx: ImportContext, node):
    """MatMul; a constant 2-D right operand is a projection and becomes Linear (weight (in, out))."""
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    a1, b1 = a.rank == 1, b.rank == 1
    if a1:
        a = _rank2(ctx, a, True)
    if b1:
        b = _rank2(ctx, b, False)
    is_weight = ctx.const(node, 1) is not None and b.rank == 2
    out = ctx.add1(Linear(), [a, b]) if is_weight else ctx.add1(MatMul(), [a, b])
    if a1 or b1:
        shape = list(out.shape)
        if b1:
            shape.pop(-1)
        if a1:
            shape.pop(-1 if b1 else -2)
        out = ctx.add1(Reshape(tuple(shape)), [out])
    return [out]


@converter("", "Gemm")
def convert_gemm(ctx: ImportContext, node):
    """alpha * A' @ B' + beta * C; a constant B with a 1-D (or absent) C becomes Linear."""
    from ...ir.ops import Transpose

    alpha, beta = ctx.attr(node, "alpha", 1.0), ctx.attr(node, "beta", 1.0)
    a, b, c = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    if ctx.attr(node, "transA", 0):
        a = ctx.add1(Transpose((1, 0)), [a])
    bw = ctx.const(node, 1)
    if bw is not None:
        w = bw.T if ctx.attr(node, "transB", 0) else bw
        b = ctx.constant(np.ascontiguousarray(w * alpha if alpha != 1.0 else w), name=node.input[1])
        alpha = 1.0
    elif ctx.attr(node, "transB", 0):
        b = ctx.add1(Transpose((1, 0)), [b])
    cw = ctx.const(node, 2)
    if bw is not None and (c is None or (cw is not None and cw.size == b.shape[1])):
        bias = None if c is None else ctx.constant(np.asarray(cw * beta).reshape(-1), name=node.input[2], dtype=b.dtype)
        return [ctx.add1(Linear(has_bias=bias is not None), [a, b] + ([bias] if bias is not None else []))]
    y = ctx.add1(MatMul(), [a, b])
    if alpha != 1.0:
        y = ctx.add1(Binary("mul"), [y, ctx.constant(np.asarray(alpha), dtype=y.dtype)])
    if c is not None:
        if beta != 1.0:
            c = ctx.add1(Binary("mul"), [c, ctx.constant(np.asarray(beta), dtype=c.dtype)])
        y = ctx.add1(Binary("add"), [y, c])
    return [y]


@converter("", "Softmax")
def convert_softmax_v1(ctx: ImportContext, node):
    """Softmax before opset 13 flattens to 2-D at `axis`: the same as per-axis only for the last axis."""
    x = ctx.input(node, 0)
    axis = ctx.attr(node, "axis", 1) % x.rank
    ctx.check(axis == x.rank - 1, f"Softmax-1/11 with axis={axis} on rank {x.rank} flattens trailing axes; "
              "only the last axis is supported (re-export with opset >= 13)")
    return [ctx.add1(Softmax(-1), [x])]


@converter("", "Softmax", since=13)
def convert_softmax(ctx: ImportContext, node):
    return [ctx.add1(Softmax(ctx.attr(node, "axis", -1)), [ctx.input(node, 0)])]


def _norm_weight(ctx: ImportContext, node, i: int, features):
    """A scale/bias input as a 1-D tensor over the normalized features (squeezing leading 1s)."""
    v = ctx.input(node, i)
    if v is None:
        return None
    if v.rank != 1:
        ctx.check(all(d == 1 for d in v.shape[:-1]), f"input {i} {v.type} must broadcast over the last axis only")
        v = ctx.add1(Reshape((v.shape[-1],)), [v])
    return v


def _last_axis(ctx: ImportContext, node, x, default=-1):
    axis = ctx.attr(node, "axis", default)
    ctx.check(axis % x.rank == x.rank - 1, f"attribute axis={axis} normalizes several axes; only the last axis is supported")


@converter("", "LayerNormalization", since=17)
def convert_layernorm(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    _last_axis(ctx, node, x)
    w, b = _norm_weight(ctx, node, 1, x.shape[-1]), _norm_weight(ctx, node, 2, x.shape[-1])
    op = LayerNorm(eps=float(ctx.attr(node, "epsilon", 1e-5)), has_weight=w is not None, has_bias=b is not None)
    return [ctx.add1(op, [x] + [t for t in (w, b) if t is not None]), None, None]


@converter("", "InstanceNormalization")
def convert_instance_norm(ctx: ImportContext, node):
    """InstanceNormalization (what both torch exporters write for GroupNorm, e.g. wav2vec2's feature extractor):
    a LayerNorm over each (n, c) row of the flattened spatial cells, then the per-channel scale and bias."""
    x = ctx.input(node, 0)
    shape = tuple(x.shape)
    if len(shape) < 3:
        ctx.fail(f"InstanceNormalization needs (N, C, *spatial), got rank {len(shape)}")
    rows = ctx.add1(Reshape(shape[:2] + (D.product(shape[2:]),)), [x])
    y = ctx.add1(Reshape(shape), [ctx.add1(LayerNorm(eps=float(ctx.attr(node, "epsilon", 1e-5)), has_weight=False,
                                                     has_bias=False), [rows])])
    per_channel = (shape[1],) + (1,) * (len(shape) - 2)   # (C,) broadcast over the spatial dims
    scale, bias = (ctx.add1(Reshape(per_channel), [ctx.input(node, i)]) for i in (1, 2))
    return [ctx.add1(Binary("add"), [ctx.add1(Binary("mul"), [y, scale]), bias])]


@converter("", "BatchNormalization")
def convert_batch_norm(ctx: ImportContext, node):
    """Inference BatchNormalization (running mean/var inputs) over channel axis 1; training_mode=1 is refused."""
    ctx.check(not int(ctx.attr(node, "training_mode", 0)), "training_mode=1 (batch statistics); supported: "
              "inference with the running mean/var inputs (training_mode=0)")
    x = ctx.input(node, 0)
    if x.rank < 2:
        ctx.fail(f"BatchNormalization needs (N, C, ...) input, got rank {x.rank}")
    scale, bias, mean, var = (ctx.input(node, i) for i in (1, 2, 3, 4))
    op = BatchNorm(eps=float(ctx.attr(node, "epsilon", 1e-5)), has_weight=True, has_bias=True)
    return [ctx.add1(op, [x, mean, var, scale, bias])]


@converter("", "RMSNormalization", since=23)
@converter("", "SimplifiedLayerNormalization")  # onnxruntime's name for the same op (registered in ai.onnx)
@converter("com.microsoft", "SimplifiedLayerNormalization")
def convert_rmsnorm(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    _last_axis(ctx, node, x)
    w = _norm_weight(ctx, node, 1, x.shape[-1])
    op = RMSNorm(eps=float(ctx.attr(node, "epsilon", 1e-5)), has_weight=w is not None)
    return [ctx.add1(op, [x] + ([w] if w is not None else [])), None]


def _reduce(fn: str, axes_input_since: int):
    def convert(ctx: ImportContext, node):
        x = ctx.input(node, 0)
        opset = ctx.opsets.get("", 1)
        if opset >= axes_input_since:
            axes = ctx.const(node, 1)
            ctx.check(not ctx.has_input(node, 1) or axes is not None, "run-time `axes` input is not supported")
            axes = None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
        else:
            axes = ctx.attr(node, "axes")
        if not axes:
            if ctx.attr(node, "noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.rank))
        return [ctx.add1(Reduce(fn, tuple(axes), bool(ctx.attr(node, "keepdims", 1))), [x])]
    return convert


for _op, (_fn, _since) in REDUCTIONS.items():
    converter("", _op)(_reduce(_fn, _since))


@converter("", "CumSum", since=11)
def convert_cumsum(ctx: ImportContext, node):
    """CumSum(x, axis) with the exclusive/reverse attributes; `axis` must be known at import time."""
    x = ctx.input(node, 0)
    axis = np.asarray(ctx.require_const(node, 1, "axis")).reshape(-1)
    ctx.check(axis.size == 1 and axis.dtype.kind == "i", f"input 1 ('axis') must be one integer, got {axis.tolist()}")
    axis = int(axis[0])
    ctx.check(-x.rank <= axis < x.rank, f"axis {axis} is out of range for rank {x.rank} input {x.type}")
    flags = {}
    for name in ("exclusive", "reverse"):
        v = ctx.attr(node, name, 0)
        ctx.check(v in (0, 1), f"attribute {name}={v!r} must be 0 or 1")
        flags[name] = bool(v)
    return [ctx.add1(CumSum(axis, **flags), [x])]
