"""Gathers: embedding, index_select and advanced indexing (one index tensor, or several on consecutive
axes) become Gather."""
from __future__ import annotations

from ...ir import dims as D
from ...ir.ops import Binary, Gather, IndexCopy, Reshape, Where
from . import register_torch_converter


def _gather(ctx, data, axis, index):
    if ctx.dtype_of(index) not in ("int64", "int32"):
        raise ctx.error(f"indices must be int64/int32, got {ctx.dtype_of(index)} (bool-mask indexing is not supported)")
    return ctx.emit(Gather(axis), [data, index])


@register_torch_converter("aten.embedding.default")
def _embedding(ctx, args):
    return _gather(ctx, args["weight"], 0, args["indices"])


@register_torch_converter("aten.index_select.default")
def _index_select(ctx, args):
    return _gather(ctx, args["self"], ctx.axis(args["dim"], ctx.rank_of(args["self"])), args["index"])


@register_torch_converter("aten.index.Tensor")
def _index(ctx, args):
    idx = list(args["indices"])
    used = [i for i, t in enumerate(idx) if t is not None]
    if len(used) == 1:
        return _gather(ctx, args["self"], used[0], idx[used[0]])
    if used != list(range(used[0], used[-1] + 1)):
        raise ctx.error(f"advanced indexing with index tensors on axes {used} that are not adjacent; supported: "
                        "one index tensor, or several on consecutive axes (x[i, j] or x[:, i, j])")
    return _gather_adjacent(ctx, args["self"], used[0], [idx[a] for a in used])


def _gather_adjacent(ctx, data, first: int, indices):
    """x[..., i0, i1, ..., ik, ...] on consecutive axes: merge those axes into one and Gather at the
    row-major linear index ((i0 * s1 + i1) * s2 + ...), the index tensors broadcasting together."""
    shape = ctx.shape_of(data)
    sizes = shape[first:first + len(indices)]
    linear = None
    for index, size in zip(indices, sizes):
        if ctx.dtype_of(index) not in ("int64", "int32"):
            raise ctx.error(f"indices must be int64/int32, got {ctx.dtype_of(index)} "
                            "(bool-mask indexing is not supported)")
        i = ctx.value(index, "int64")
        n = ctx.value(size, "int64")
        # torch accepts negative indices: i < 0 counts from the end of the axis
        i = ctx.emit(Where(), [ctx.emit(Binary("lt"), [i, ctx.value(0, "int64")]), ctx.emit(Binary("add"), [i, n]), i])
        linear = i if linear is None else ctx.emit(Binary("add"), [ctx.emit(Binary("mul"), [linear, n]), i])
    merged = ctx.emit(Reshape((*shape[:first], D.product(sizes), *shape[first + len(indices):])), [data],
                      name=f"{ctx.node.name}_merged")
    return ctx.emit(Gather(first), [merged, linear])


@register_torch_converter("aten.index_copy.default")
def _index_copy(ctx, args):
    return ctx.emit(IndexCopy(ctx.axis(args["dim"], ctx.rank_of(args["self"]))), [args["self"], args["index"], args["source"]])


@register_torch_converter("aten.index_put.default")
def _index_put(ctx, args):
    """x[..., idx, ...] = values with ONE index tensor (what torch.export makes of index_copy_ into a static
    KV cache): IndexCopy. Several index tensors, boolean masks and accumulate=True are not supported."""
    idx = list(args["indices"])
    used = [i for i, t in enumerate(idx) if t is not None]
    if len(used) != 1 or args.get("accumulate"):
        raise ctx.error("index_put with several index tensors or accumulate=True is not supported; supported: "
                        "x[..., index, ...] = values with one 1-D int index tensor (index_copy_)")
    axis, index = used[0], idx[used[0]]
    if ctx.dtype_of(index) not in ("int64", "int32") or ctx.rank_of(index) != 1:
        raise ctx.error("index_put: only a 1-D int64/int32 index tensor is supported (no bool masks)")
    return ctx.emit(IndexCopy(axis), [args["self"], index, args["values"]])
