"""Elementwise aten ops: arithmetic, comparisons, logic, unary math, activations, where/masked_fill.

Torch's type promotion is read from the dtype torch recorded on the node, and both operands are
cast to it, so Python scalars become constants of the right dtype (a float scalar on a float16
tensor stays float16, an int scalar on a float tensor becomes float).
"""
from __future__ import annotations

import torch

from ...ir.ops import Activation, Binary, Unary, Where
from . import register_torch_converter
from .context import TORCH_TO_IR_DTYPE, TorchConst

_IR_TO_TORCH = {v: k for k, v in TORCH_TO_IR_DTYPE.items()}


def _dummy(ctx, x):
    if isinstance(x, (bool, int, float)):
        return x
    return torch.empty([1] * ctx.rank_of(x), dtype=_IR_TO_TORCH[ctx.dtype_of(x)])


def promoted_dtype(ctx, a, b) -> str:
    """Torch's result dtype for an op on a and b (tensors or Python scalars)."""
    return TORCH_TO_IR_DTYPE[torch.result_type(_dummy(ctx, a), _dummy(ctx, b))]


def _arith(fn: str):
    def convert(ctx, args):
        a, b = args["self"], args["other"] if "other" in args else args["exponent"]
        dt = ctx.out_dtype()
        alpha = args.get("alpha", 1)
        if alpha != 1:  # add/sub with alpha: a + alpha * b
            b = ctx.emit(Binary("mul"), [ctx.value(b, dt), ctx.value(alpha, dt)], name=ctx.node.name + "_alpha")
        return ctx.emit(Binary(fn), [ctx.value(a, dt), ctx.value(b, dt)])
    return convert


for _fn, _ops in {
    "add": ("aten.add.Tensor", "aten.add.Scalar"),
    "sub": ("aten.sub.Tensor", "aten.sub.Scalar"),
    "mul": ("aten.mul.Tensor", "aten.mul.Scalar"),
    "div": ("aten.div.Tensor", "aten.div.Scalar"),
    "pow": ("aten.pow.Tensor_Tensor", "aten.pow.Tensor_Scalar"),
    "max": ("aten.maximum.default",),
    "min": ("aten.minimum.default",),
}.items():
    register_torch_converter(*_ops)(_arith(_fn))


@register_torch_converter("aten.pow.Scalar")
def _pow_scalar_base(ctx, args):
    dt = ctx.out_dtype()
    return ctx.emit(Binary("pow"), [ctx.value(args["self"], dt), ctx.value(args["exponent"], dt)])


@register_torch_converter("aten.rsub.Scalar", "aten.rsub.Tensor")
def _rsub(ctx, args):
    dt = ctx.out_dtype()
    b = args["self"]
    if args.get("alpha", 1) != 1:
        b = ctx.emit(Binary("mul"), [ctx.value(b, dt), ctx.value(args["alpha"], dt)], name=ctx.node.name + "_alpha")
    return ctx.emit(Binary("sub"), [ctx.value(args["other"], dt), ctx.value(b, dt)])


@register_torch_converter("aten.div.Tensor_mode", "aten.div.Scalar_mode")
def _div_mode(ctx, args):
    dt, mode = ctx.out_dtype(), args.get("rounding_mode")
    q = ctx.emit(Binary("div"), [ctx.value(args["self"], dt), ctx.value(args["other"], dt)])
    if mode is None or (mode == "floor" and dt not in ("float32", "float16", "bfloat16", "float64")):
        return q  # the IR's integer division floors
    if mode == "floor":
        return ctx.emit(Unary("floor"), [q], name=ctx.node.name + "_floor")
    raise ctx.error(f"rounding_mode={mode!r} is not supported; supported: None, 'floor'")


@register_torch_converter("aten.clamp.default")
def _clamp(ctx, args):
    dt = ctx.out_dtype()
    x = ctx.value(args["self"], dt)
    if args.get("min") is not None:
        x = ctx.emit(Binary("max"), [x, ctx.value(args["min"], dt)], name=ctx.node.name + "_min")
    if args.get("max") is not None:
        x = ctx.emit(Binary("min"), [x, ctx.value(args["max"], dt)], name=ctx.node.name + "_max")
    return x


def _compare(fn: str):
    def convert(ctx, args):
        a, b = args["self"], args["other"]
        dt = promoted_dtype(ctx, a, b)
        return ctx.emit(Binary(fn), [ctx.value(a, dt), ctx.value(b, dt)])
    return convert


for _fn in ("eq", "ne", "lt", "le", "gt", "ge"):
    register_torch_converter(f"aten.{_fn}.Tensor", f"aten.{_fn}.Scalar")(_compare(_fn))


def _logic(fn: str, bool_only: bool):
    def convert(ctx, args):
        a, b = args["self"], args["other"]
        if bool_only and not (ctx.dtype_of(a) == "bool" and (isinstance(b, bool) or ctx.dtype_of(b) == "bool")):
            raise ctx.error("bitwise ops are supported on bool tensors only (masks); got "
                            f"{ctx.dtype_of(a)}")
        return ctx.emit(Binary(fn), [ctx.value(a, "bool"), ctx.value(b, "bool")])
    return convert


for _fn in ("and", "or", "xor"):
    register_torch_converter(f"aten.logical_{_fn}.default")(_logic(_fn, False))
    register_torch_converter(f"aten.bitwise_{_fn}.Tensor", f"aten.bitwise_{_fn}.Scalar")(_logic(_fn, True))


@register_torch_converter("aten.bitwise_not.default")
def _bitwise_not(ctx, args):
    if ctx.dtype_of(args["self"]) != "bool":
        raise ctx.error(f"bitwise_not is supported on bool tensors only, got {ctx.dtype_of(args['self'])}")
    return ctx.emit(Unary("not"), [args["self"]])


@register_torch_converter("aten.logical_not.default")
def _logical_not(ctx, args):
    return ctx.emit(Unary("not"), [ctx.value(args["self"], "bool")])


def _unary(fn: str):
    def convert(ctx, args):
        return ctx.emit(Unary(fn), [ctx.value(args["self"], ctx.out_dtype())])
    return convert


for _fn, _op in {"neg": "neg", "exp": "exp", "log": "log", "sqrt": "sqrt", "rsqrt": "rsqrt", "tanh": "tanh",
                 "sigmoid": "sigmoid", "abs": "abs", "reciprocal": "reciprocal", "erf": "erf", "sin": "sin",
                 "cos": "cos", "floor": "floor", "ceil": "ceil"}.items():
    register_torch_converter(f"aten.{_fn}.default")(_unary(_op))


@register_torch_converter("aten.gelu.default")
def _gelu(ctx, args):
    approx = args.get("approximate", "none")
    if approx not in ("none", "tanh"):
        raise ctx.error(f"gelu approximate={approx!r}; supported: 'none', 'tanh'")
    return ctx.emit(Activation("gelu" if approx == "none" else "gelu_tanh"), [args["self"]])


for _fn in ("relu", "silu"):
    register_torch_converter(f"aten.{_fn}.default")(
        (lambda kind: lambda ctx, args: ctx.emit(Activation(kind), [args["self"]]))(_fn))


@register_torch_converter("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def _where(ctx, args):
    dt = ctx.out_dtype()
    return ctx.emit(Where(), [ctx.value(args["condition"], "bool"), ctx.value(args["self"], dt),
                              ctx.value(args["other"], dt)])


@register_torch_converter("aten.masked_fill.Scalar", "aten.masked_fill.Tensor")
def _masked_fill(ctx, args):
    dt = ctx.out_dtype()
    return ctx.emit(Where(), [ctx.value(args["mask"], "bool"), ctx.value(args["value"], dt),
                              ctx.value(args["self"], dt)])


@register_torch_converter("aten.scalar_tensor.default")
def _scalar_tensor(ctx, args):
    return TorchConst(torch.scalar_tensor(args["s"], dtype=args.get("dtype") or torch.float32), "scalar")
