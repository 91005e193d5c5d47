"""Writes into part of a tensor, functionalized by torch.export, and constant padding — as Concat, Slice
and Gather of existing values (no new IR op):

- copy(self, src): src broadcast to self's shape, in self's dtype.
- slice_scatter(self, src, dim, start, end, step): step 1 is Concat(self[:start], src, self[end:]);
  a larger step (static sizes) is one Gather over Concat(self, src) at a constant source index.
- select_scatter(self, src, dim, index): slice_scatter of src with the axis put back.
- constant_pad_nd(self, pad, value): filled blocks concatenated before/after each padded axis (Swin's
  window padding); negative pads crop.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.ops import Concat, Expand, Gather, Slice
from . import register_torch_converter
from .shape import INT64_MAX, reshape, slice_value


@register_torch_converter("aten.copy.default")
def _copy(ctx, args):
    shape = ctx.shape_of(args["self"])
    src = ctx.value(args["src"], ctx.dtype_of(args["self"]))
    if tuple(src.shape) == tuple(shape):
        return src
    return ctx.emit(Expand(tuple(shape)), [src])


def _bounds(ctx, n, start, end):
    """Normalized (start, end) of a step-1 slice of an axis of size n; end None = to the end."""
    start = 0 if start is None else ctx.dim(start)
    end = None if end is None or (isinstance(end, int) and end >= INT64_MAX) else ctx.dim(end)
    if isinstance(n, int):
        start = start + n if isinstance(start, int) and start < 0 else start
        end = end + n if isinstance(end, int) and end < 0 else end
        start = min(max(start, 0), n) if isinstance(start, int) else start
        end = None if isinstance(end, int) and end >= n else end
    return start, end


def _scatter_strided(ctx, x, src, axis, start, end, step):
    """out[i] = src[(i - start) // step] where i is in range(start, end, step), else x[i]: one Gather over
    Concat(x, src) at a constant index (static axis sizes)."""
    n = ctx.shape_of(x)[axis]
    if not isinstance(n, int) or not all(isinstance(b, int) or b is None for b in (start, end)):
        raise ctx.error(f"slice_scatter with step {step} needs static bounds and axis size; got axis {n}, "
                        f"start {start}, end {end}")
    hits = list(range(*slice(start, end, step).indices(n)))
    index = np.arange(n, dtype=np.int64)
    index[hits] = n + np.arange(len(hits))
    both = ctx.emit(Concat(axis), [x, src], name=ctx.node.name + "_both")
    return ctx.emit(Gather(axis), [both, ctx.constant(index, name=ctx.node.name + "_index")])


def slice_scatter(ctx, x, src, axis, start, end, step=1):
    n = ctx.shape_of(x)[axis]
    src = ctx.value(src, ctx.dtype_of(x))
    x = ctx.value(x)
    start, end = _bounds(ctx, n, start, end)
    if step != 1:
        return _scatter_strided(ctx, x, src, axis, start, end, int(step))
    parts = []
    if start != 0:
        parts.append(slice_value(ctx, x, axis, 0, start, 1, "_head"))
    parts.append(src)
    if end is not None and not D.equal(end, n):
        parts.append(slice_value(ctx, x, axis, end, None, 1, "_tail"))
    return parts[0] if len(parts) == 1 else ctx.emit(Concat(axis), parts)


@register_torch_converter("aten.slice_scatter.default")
def _slice_scatter(ctx, args):
    x = args["self"]
    axis = ctx.axis(args.get("dim", 0), ctx.rank_of(x))
    return slice_scatter(ctx, x, args["src"], axis, args.get("start"), args.get("end"), args.get("step", 1))


@register_torch_converter("aten.select_scatter.default")
def _select_scatter(ctx, args):
    x = args["self"]
    shape = list(ctx.shape_of(x))
    axis = ctx.axis(args["dim"], len(shape))
    index = ctx.dim(args["index"])
    if isinstance(index, int) and isinstance(shape[axis], int) and index < 0:
        index += shape[axis]
    src = reshape(ctx, ctx.value(args["src"], ctx.dtype_of(x)), shape[:axis] + [1] + shape[axis + 1:], "_src")
    return slice_scatter(ctx, x, src, axis, index, D.add(index, 1))


@register_torch_converter("aten.constant_pad_nd.default")
def _constant_pad_nd(ctx, args):
    from .creation import _filled

    x = args["self"]
    pad = [ctx.dim(p) for p in args["pad"]]
    rank = ctx.rank_of(x)
    if len(pad) % 2 or len(pad) // 2 > rank:
        raise ctx.error(f"pad {pad} must hold (before, after) pairs for at most {rank} axes")
    dt = ctx.dtype_of(x)
    x = ctx.value(x)
    for i in range(len(pad) // 2):
        axis = rank - 1 - i  # pairs start from the last axis
        before, after = pad[2 * i], pad[2 * i + 1]
        for amount, at_end in ((before, False), (after, True)):
            if amount == 0:
                continue
            if isinstance(amount, int) and amount < 0:  # cropping
                x = slice_value(ctx, x, axis, None if at_end else -amount, amount if at_end else None, 1,
                                f"_crop{axis}")
                continue
            shape = list(x.shape)
            shape[axis] = amount
            block = _filled(ctx, shape, args.get("value", 0), None)
            block = ctx.value(block, dt)
            x = ctx.emit(Concat(axis), [x, block] if at_end else [block, x], name=f"{ctx.node.name}_pad{axis}")
    return x
