"""Gathers: embedding, index_select and single-tensor advanced indexing become Gather."""
from __future__ import annotations

from ...ir.ops import Gather
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
    if len(used) != 1:
        raise ctx.error(f"advanced indexing with {len(used)} index tensors; supported: exactly one (x[..., idx, ...])")
    return _gather(ctx, args["self"], used[0], idx[used[0]])
