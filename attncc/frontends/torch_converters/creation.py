"""Tensor creation, dtype conversion, triangular masks and dropout.

Creation ops with static arguments never reach these converters: the importer evaluates any op
whose inputs are all known (literals, parameters, buffers) with torch itself. These converters
handle the symbolic cases (sizes from dynamic dims) and the non-constant tril/triu.
"""
from __future__ import annotations

import numpy as np
import torch

from ...ir import dims as D
from ...ir.ops import Binary, Cast, CumSum, Expand, Slice, Where
from . import register_torch_converter
from .context import ir_dtype


def _filled(ctx, size, fill, dtype):
    """A tensor of `size` filled with `fill`: a scalar constant broadcast to the (symbolic) size."""
    dt = ir_dtype(dtype, ctx.where()) if dtype is not None else ctx.out_dtype()
    return ctx.emit(Expand(tuple(ctx.dim(d) for d in size)), [ctx.value(fill, dt)])


@register_torch_converter("aten.full.default")
def _full(ctx, args):
    return _filled(ctx, args["size"], args["fill_value"], args.get("dtype"))


@register_torch_converter("aten.ones.default", "aten.zeros.default")
def _ones_zeros(ctx, args):
    return _filled(ctx, args["size"], 1 if "ones" in str(ctx.node.target) else 0, args.get("dtype"))


@register_torch_converter("aten.full_like.default", "aten.ones_like.default", "aten.zeros_like.default")
def _like(ctx, args):
    target = str(ctx.node.target)
    fill = args.get("fill_value", 1 if "ones" in target else 0)
    return _filled(ctx, ctx.shape_of(args["self"]), fill, args.get("dtype"))


@register_torch_converter("aten.new_ones.default", "aten.new_zeros.default", "aten.new_full.default")
def _new(ctx, args):
    target = str(ctx.node.target)
    fill = args.get("fill_value", 1 if "ones" in target else 0)
    return _filled(ctx, args["size"], fill, args.get("dtype"))


@register_torch_converter("aten.empty.memory_format", "aten.empty_permuted.default", "aten.empty_strided.default",
                          "aten.new_empty.default", "aten.new_empty_strided.default")
def _empty(ctx, args):
    """Uninitialized memory has no defined value: zeros are as good as any, and deterministic (DeepSeek-V3
    builds its MLA key with torch.empty and then fills it slice by slice: slice_scatter, see scatter.py)."""
    return _filled(ctx, args["size"], 0, args.get("dtype"))


@register_torch_converter("aten.arange.default", "aten.arange.start", "aten.arange.start_step")
def _arange(ctx, args):
    """arange with symbolic bounds (positions): a slice of a constant arange that spans every value the
    bounds can take, given each dim's declared maximum; without a maximum, an exclusive running sum of
    ones (start + [0, 1, ..., n-1]), which needs no bound."""
    start, end, step = ctx.dim(args.get("start", 0)), ctx.dim(args["end"]), args.get("step", 1)
    if step != 1:
        raise ctx.error(f"arange({start}, {end}, {step}) with symbolic bounds needs step 1")
    if any(ctx.dim_bounds.get(sym) is None for sym in D.symbols(end)):
        return _counted_arange(ctx, start, end, ir_dtype(args.get("dtype") or torch.int64, ctx.where()))
    upper = D.evaluate(end, {s: ctx.dim_bounds[s] for s in D.symbols(end)})  # sizes only grow with their dims
    base = start if isinstance(start, int) and start < 0 else 0
    dt = ir_dtype(args.get("dtype") or torch.int64, ctx.where())
    table = ctx.constant(np.arange(base, max(upper, base + 1), dtype=dt), name=f"{ctx.node.name}_table")
    return ctx.emit(Slice(0, D.add(start, -base), D.add(end, -base), 1), [table])


def _counted_arange(ctx, start, end, dt: str):
    """arange(start, end) as start + exclusive CumSum(ones(end - start)): works for unbounded dims."""
    ones = ctx.emit(Expand((D.add(end, D.mul(start, -1)),)), [ctx.value(1, dt)], name=f"{ctx.node.name}_ones")
    counts = ctx.emit(CumSum(axis=0, exclusive=True), [ones], name=f"{ctx.node.name}_counts")
    return counts if start == 0 else ctx.emit(Binary("add"), [counts, ctx.value(start, dt)])


@register_torch_converter("aten._to_copy.default", "aten.to.dtype", "aten.to.dtype_layout", "aten._to_dtype.default")
def _to_copy(ctx, args):
    dt = ctx.out_dtype()
    x = args["self"]
    return x if ctx.dtype_of(x) == dt else ctx.emit(Cast(dt), [x])


@register_torch_converter("aten.type_as.default")
def _type_as(ctx, args):
    return ctx.value(args["self"], ctx.dtype_of(args["other"]))


def _tri(lower: bool):
    def convert(ctx, args):
        x, k = args["self"], int(args.get("diagonal", 0))
        n, m = ctx.shape_of(x)[-2:]
        if not (isinstance(n, int) and isinstance(m, int)):
            raise ctx.error(f"{'tril' if lower else 'triu'} of a symbolic ({n}, {m}) matrix is not supported; "
                            "supported: static last two dims")
        keep = np.tril(np.ones((n, m), bool), k) if lower else np.triu(np.ones((n, m), bool), k)
        zero = ctx.value(0, ctx.dtype_of(x))
        return ctx.emit(Where(), [ctx.constant(keep, name=f"{ctx.node.name}_keep"), x, zero])
    return convert


register_torch_converter("aten.tril.default")(_tri(True))
register_torch_converter("aten.triu.default")(_tri(False))


@register_torch_converter("aten.dropout.default", "aten.native_dropout.default", "aten.feature_dropout.default")
def _dropout(ctx, args):
    p, train = float(args.get("p", 0.0)), args.get("train", True)
    if train and p > 0:
        raise ctx.error(f"dropout with p={p} in training mode is random and cannot be compiled; "
                        "call model.eval() before importing (dropout is the identity in eval)")
    x = args.get("input", args.get("self"))
    if str(ctx.node.target) == "aten.native_dropout.default":
        return (x, None)  # the keep-mask output only feeds backward
    return x


@register_torch_converter("aten.alias_copy.default", "aten.positive.default")
def _alias(ctx, args):
    return args["self"]


@register_torch_converter("aten.fill.Scalar")
def _fill(ctx, args):
    return _filled(ctx, ctx.shape_of(args["self"]), args["value"], None)


@register_torch_converter("aten.square.default")
def _square(ctx, args):
    return ctx.emit(Binary("mul"), [args["self"], args["self"]])
