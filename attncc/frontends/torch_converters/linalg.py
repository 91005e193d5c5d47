"""Matrix products: linear/addmm become Linear (weight stored (in, out)); mm/bmm/matmul become MatMul."""
from __future__ import annotations

from ...ir.ops import Binary, Linear, MatMul, Transpose
from . import register_torch_converter


def _weight_in_out(ctx, w):
    """A (out, in) torch weight as an (in, out) IR value: a precomputed constant when known."""
    arr = ctx.const_array(w)
    if arr is not None and arr.ndim == 2:
        name = getattr(w, "name", "weight")
        return ctx.constant(arr.T, name=f"{name}_t")
    return ctx.emit(Transpose((1, 0)), [w], name=ctx.node.name + "_wt")


@register_torch_converter("aten.linear.default")
def _linear(ctx, args):
    x, w, b = args["input"], args["weight"], args.get("bias")
    if ctx.rank_of(w) != 2:
        raise ctx.error(f"linear weight must be rank 2, got shape {ctx.shape_of(w)}")
    inputs = [x, _weight_in_out(ctx, w)] + ([b] if b is not None else [])
    return ctx.emit(Linear(has_bias=b is not None), inputs)


@register_torch_converter("aten.addmm.default")
def _addmm(ctx, args):
    bias, x, w = args["self"], args["mat1"], args["mat2"]
    beta, alpha = args.get("beta", 1), args.get("alpha", 1)
    if ctx.rank_of(bias) == 1 and beta == 1 and alpha == 1:  # the decomposed nn.Linear form
        return ctx.emit(Linear(has_bias=True), [x, w, bias])
    y = ctx.emit(MatMul(), [x, w], name=ctx.node.name + "_mm")
    dt = ctx.out_dtype()
    if alpha != 1:
        y = ctx.emit(Binary("mul"), [y, ctx.value(alpha, dt)], name=ctx.node.name + "_alpha")
    if beta != 1:
        bias = ctx.emit(Binary("mul"), [ctx.value(bias, dt), ctx.value(beta, dt)], name=ctx.node.name + "_beta")
    return ctx.emit(Binary("add"), [y, bias])


@register_torch_converter("aten.mm.default", "aten.bmm.default")
def _mm(ctx, args):
    return ctx.emit(MatMul(), [args["self"], args["mat2"]])


@register_torch_converter("aten.matmul.default")
def _matmul(ctx, args):
    a, b = args["self"], args["other"]
    if ctx.rank_of(a) < 2 or ctx.rank_of(b) < 2:
        raise ctx.error(f"matmul with a vector operand (shapes {ctx.shape_of(a)}, {ctx.shape_of(b)}) is not "
                        "supported; supported: both operands rank >= 2")
    return ctx.emit(MatMul(), [a, b])


@register_torch_converter("aten.baddbmm.default")
def _baddbmm(ctx, args):
    dt = ctx.out_dtype()
    y = ctx.emit(MatMul(), [args["batch1"], args["batch2"]], name=ctx.node.name + "_bmm")
    if args.get("alpha", 1) != 1:
        y = ctx.emit(Binary("mul"), [y, ctx.value(args["alpha"], dt)], name=ctx.node.name + "_alpha")
    bias = args["self"]
    if args.get("beta", 1) == 0:
        return y
    if args.get("beta", 1) != 1:
        bias = ctx.emit(Binary("mul"), [ctx.value(bias, dt), ctx.value(args["beta"], dt)], name=ctx.node.name + "_beta")
    return ctx.emit(Binary("add"), [y, bias])
