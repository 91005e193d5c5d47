"""Top-k and gather along an axis (MoE routers), written with existing IR ops so every backend runs them:

- topk(x, k, dim): k rounds of "the largest value not taken yet, at its lowest index" (Reduce max, then
  Reduce min over the positions holding it); values and indices concatenate in round order, i.e. sorted.
  Unrolled k times, so k is capped (MAX_TOPK); routers pick a handful of experts.
- gather(x, dim, index): out[.., j, ..] = x[.., index[.., j, ..], ..] as a one-hot selection, the sum over
  the axis of Where(index == n, x[.., n, ..], 0) (exact: one term is picked, the rest are 0), which works
  for symbolic sizes too.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.ops import Binary, Concat, Reduce, Reshape, Unary, Where
from . import register_torch_converter
from .shape import slice_value

MAX_TOPK = 64


def _positions(ctx, n: int, rank: int, axis: int):
    """arange(n) shaped to broadcast along `axis` of a rank-`rank` tensor."""
    shape = [n if a == axis else 1 for a in range(rank)]
    return ctx.constant(np.arange(n, dtype=np.int64).reshape(shape), name=f"{ctx.node.name}_positions")


def _lowest_fill(ctx, dtype: str, largest: bool):
    """The value a taken entry is replaced by: never picked again before an untaken one."""
    if dtype.startswith(("float", "bfloat")):
        return ctx.value(float("-inf") if largest else float("inf"), dtype)
    info = np.iinfo(np.dtype(dtype))
    return ctx.value(int(info.min if largest else info.max), dtype)


@register_torch_converter("aten.topk.default")
def _topk(ctx, args):
    x = args["self"]
    shape = ctx.shape_of(x)
    rank = len(shape)
    axis = ctx.axis(args.get("dim", -1), rank)
    k, n, largest = args["k"], shape[axis], bool(args.get("largest", True))
    if not isinstance(k, int) or not isinstance(n, int):
        raise ctx.error(f"topk needs a static k and axis size, got k={k} over {n} entries")
    if k > MAX_TOPK:
        raise ctx.error(f"topk with k={k} > {MAX_TOPK} is not supported (it is unrolled k times)")
    dt = ctx.dtype_of(x)
    x = ctx.value(x)
    pos = _positions(ctx, n, rank, axis)
    past_end = ctx.value(n, "int64")
    fill = _lowest_fill(ctx, dt, largest)
    pick = "max" if largest else "min"
    taken = None
    values, indices = [], []
    for r in range(k):
        name = f"{ctx.node.name}_{r}"
        live = x if taken is None else ctx.emit(Where(), [taken, fill, x], name=f"{name}_live")
        best = ctx.emit(Reduce(pick, (axis,), True), [live], name=f"{name}_value")
        hit = ctx.emit(Binary("eq"), [live, best], name=f"{name}_hit")
        if taken is not None:  # a taken entry equal to the best (ties with the fill value) is not a hit
            hit = ctx.emit(Binary("and"), [hit, ctx.emit(Unary("not"), [taken])], name=f"{name}_fresh")
        at = ctx.emit(Reduce("min", (axis,), True), [ctx.emit(Where(), [hit, pos, past_end])], name=f"{name}_index")
        now = ctx.emit(Binary("eq"), [pos, at], name=f"{name}_taken")
        taken = now if taken is None else ctx.emit(Binary("or"), [taken, now])
        values.append(best)
        indices.append(at)
    if k == 1:
        return values[0], indices[0]
    return ctx.emit(Concat(axis), values, name=f"{ctx.node.name}_values"), \
        ctx.emit(Concat(axis), indices, name=f"{ctx.node.name}_indices")


@register_torch_converter("aten.gather.default")
def _gather(ctx, args):
    x, index = args["self"], args["index"]
    shape, ishape = list(ctx.shape_of(x)), list(ctx.shape_of(index))
    rank = len(shape)
    axis = ctx.axis(args["dim"], rank)
    n = shape[axis]
    if not isinstance(n, int):
        raise ctx.error(f"gather along a symbolic axis ({n} entries) is not supported; supported: a static axis")
    if len(ishape) != rank:
        raise ctx.error(f"index of rank {len(ishape)} for input of rank {rank}")
    if ctx.dtype_of(index) not in ("int64", "int32"):
        raise ctx.error(f"index must be int64/int32, got {ctx.dtype_of(index)}")
    x = ctx.value(x)
    for a in range(rank):  # torch reads only the leading index.size(a) entries of the other axes
        if a != axis and not D.equal(ishape[a], shape[a]):
            x = slice_value(ctx, x, a, 0, ishape[a], 1, f"_rows{a}")
    idx = ctx.value(index, "int64")
    wrapped = ctx.emit(Binary("add"), [idx, ctx.value(n, "int64")], name=f"{ctx.node.name}_wrapped")
    idx = ctx.emit(Where(), [ctx.emit(Binary("lt"), [idx, ctx.value(0, "int64")]), wrapped, idx])
    # (.., k, ..) indices against (.., 1, n, ..) data: the one-hot axis n sits right after the gathered one
    idx = ctx.emit(Reshape(tuple(ishape[:axis + 1]) + (1,) + tuple(ishape[axis + 1:])), [idx],
                   name=f"{ctx.node.name}_index")
    hot = ctx.emit(Binary("eq"), [idx, _positions(ctx, n, rank + 1, axis + 1)], name=f"{ctx.node.name}_onehot")
    data = ctx.emit(Reshape(tuple(ishape[:axis]) + (1, n) + tuple(ishape[axis + 1:])), [x], name=f"{ctx.node.name}_data")
    picked = ctx.emit(Where(), [hot, data, ctx.value(0, ctx.dtype_of(x))], name=f"{ctx.node.name}_picked")
    return ctx.emit(Reduce("sum", (axis + 1,)), [picked])
