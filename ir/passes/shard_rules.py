"""How a split flows through each op when a rank graph is rebuilt (see shard_layout for the layouts).

A rule returns the node's re-emitted outputs with their layouts, or None when it has no rule for the
inputs' splits: the rebuild then gathers them whole first (a correct fallback, recorded in notes).
"""
from __future__ import annotations

import dataclasses

from .. import dims as D
from ..ops import AllReduce, Binary, Linear, Reshape
from .shard_layout import ELEMENTWISE, Partial, Pieces, RankRebuild, blocks_of, rule, weight_blocks


@rule("Constant")
def _constant(rb: RankRebuild, node, ins):
    key = node.op.key
    arr = rb.old.constants[key]
    ws = rb.slices.get(key)
    if ws is None:
        return [(rb.g.add_constant(arr, name=key), None)]
    i = rb.index[ws.group]
    blocks = blocks_of(ws.ranges[i])
    v = rb.g.add_constant(weight_blocks(arr, ws.axis, blocks), name=key)
    if len(blocks) > 1:
        by_rank = tuple(blocks_of(e) for e in ws.ranges)
        return [(v, Pieces(ws.axis, by_rank, arr.shape[ws.axis], ws.group, rb.sizes[ws.group], i))]
    start, stop = blocks[0]
    return [(v, rb.split_of(ws.group, ws.axis, arr.shape[ws.axis], start, stop))]


@rule(*ELEMENTWISE)
def _elementwise(rb: RankRebuild, node, ins):
    out_rank = node.outputs[0].rank
    splits = [(lay.axis + out_rank - v.rank, lay) for v, lay in (x for x in ins if x is not None) if lay is not None]
    if not splits:
        return None
    axis, lay0 = splits[0]
    if any(ax != axis or (lay.start, lay.stop, lay.group) != (lay0.start, lay0.stop, lay0.group) for ax, lay in splits):
        return None
    args = []
    for x in ins:
        v, lay = x
        if lay is None:
            ax = axis - (out_rank - v.rank)
            if ax >= 0 and v.shape[ax] != 1:
                v = rb.local_block((v, None), lay0.at(ax))
        args.append(v)
    return [(v, lay0.at(axis)) for v in rb.emit(node, node.op, args)]


@rule("Transpose")
def _transpose(rb: RankRebuild, node, ins):
    v, lay = ins[0]
    if lay is None:
        return None
    return [(rb.emit(node, node.op, [v])[0], lay.at(list(node.op.perm).index(lay.axis)))]


@rule("Reshape")
def _reshape(rb: RankRebuild, node, ins):
    """Keep a split through a reshape that keeps its axis, splits it (heads x head_dim) or merges it
    with the axes after it, as long as the block stays whole along the new axis."""
    v, lay = ins[0]
    if lay is None:
        return None
    old_in, old_out = node.inputs[0].shape, node.outputs[0].shape
    before = D.product(old_in[:lay.axis])
    for a in range(len(old_out)):
        o = old_out[a]
        if not isinstance(o, int) or not D.equal(D.product(old_out[:a]), before) or (o == 1 and lay.full != 1):
            continue
        if o == lay.full:                                           # same axis
            new = lay.at(a)
        elif lay.full % o == 0 and _spans(old_out[a:], lay.full):   # split: o outer blocks of `factor`
            factor = lay.full // o
            if lay.start % factor or lay.stop % factor:
                return None
            new = dataclasses.replace(lay, axis=a, start=lay.start // factor, stop=lay.stop // factor, full=o)
        elif o % lay.full == 0 and _spans(old_in[lay.axis:], o):     # merged with the axes after it
            factor = o // lay.full
            new = dataclasses.replace(lay, axis=a, start=lay.start * factor, stop=lay.stop * factor, full=o)
        else:
            return None
        shape = list(node.op.shape)
        if shape[a] != -1:
            shape[a] = new.stop - new.start
        return [(rb.emit(node, Reshape(tuple(shape)), [v])[0], new)]
    return None


def _spans(shape, total: int) -> bool:
    """Some leading run of `shape` multiplies to exactly `total`."""
    acc = 1
    for d in shape:
        if not isinstance(d, int):
            return False
        acc *= d
        if acc == total:
            return True
        if acc > total:
            return False
    return False


@rule("Linear")
def _linear(rb: RankRebuild, node, ins):
    (x, xl), (w, wl) = ins[0], ins[1]
    bias = ins[2] if node.op.has_bias else None
    last = node.inputs[0].rank - 1
    if xl is not None and xl.axis != last and wl is None and (bias is None or bias[1] is None):
        return [(v, xl) for v in rb.emit(node, node.op, [x, w] + ([bias[0]] if bias else []))]   # row-wise
    if xl is not None and xl.axis != last and wl is not None:
        x, xl = rb.gather(x, xl), None                     # sequence-parallel: gather tokens before the column split
    if xl is None and wl is not None and wl.axis == 1:     # column-parallel
        args = [x, w] + ([rb.local_block(bias, wl.at(0))] if bias else [])
        return [(rb.emit(node, node.op, args)[0], wl.at(last))]
    if xl is not None and xl.axis == last and (wl is None or wl.axis == 0):   # row-parallel: partial sums
        w = rb.local_block((w, wl), xl.at(0))
        y = rb.emit(node, Linear(False), [x, w])[0]
        out, lay = rb.reduce_partial(y, xl.group)
        if bias is not None:
            b = rb.replicated(bias)
            out = rb.emit1(Binary("add"), [out, b], "bias")
        return [(out, lay)]
    return None


@rule("Rotary")
def _rotary(rb: RankRebuild, node, ins):
    (x, xl) = ins[0]
    if xl is None or xl.axis == node.inputs[0].rank - 1 or ins[1][1] is not None or ins[2][1] is not None:
        return None
    return [(rb.emit(node, node.op, [x, ins[1][0], ins[2][0]])[0], xl)]


@rule("RMSNorm", "LayerNorm")
def _norm(rb: RankRebuild, node, ins):
    (x, xl) = ins[0]
    if xl is None or xl.axis == node.inputs[0].rank - 1 or any(lay is not None for _, lay in ins[1:]):
        return None
    return [(rb.emit(node, node.op, [v for v, _ in ins])[0], xl)]


@rule("Softmax")
def _softmax(rb: RankRebuild, node, ins):
    (x, xl) = ins[0]
    if xl is None or xl.axis == node.op.axis % node.inputs[0].rank:
        return None
    return [(rb.emit(node, node.op, [x])[0], xl)]


@rule("Reduce")
def _reduce(rb: RankRebuild, node, ins):
    (x, xl) = ins[0]
    if xl is None:
        return None
    rank = node.inputs[0].rank
    axes = {a % rank for a in node.op.axes}
    if xl.axis not in axes:
        axis = xl.axis if node.op.keepdims else xl.axis - sum(1 for a in axes if a < xl.axis)
        return [(rb.emit(node, node.op, [x])[0], xl.at(axis))]
    if node.op.fn == "sum":                                 # a sum over the split axis: partial sums
        y = rb.emit(node, node.op, [x])[0]
        if xl.group == "ep":                                # expert outputs: combined lazily (shard_moe)
            return [(y, Partial(xl.group, xl.ranks, xl.index))]
        return [(rb.emit1(AllReduce(xl.ranks, "sum", xl.group), [y], "allreduce"), None)]
    return None


@rule("Slice")
def _slice(rb: RankRebuild, node, ins):
    (x, xl) = ins[0]
    if xl is None or xl.axis == node.op.axis % node.inputs[0].rank:
        return None
    return [(rb.emit(node, node.op, [x])[0], xl)]


@rule("Concat")
def _concat(rb: RankRebuild, node, ins):
    """Concatenation along another axis keeps a common split (whole inputs are cut to the block)."""
    lays = [lay for _, lay in ins if lay is not None]
    if not lays:
        return None
    lay0 = lays[0]
    axis = node.op.axis % node.outputs[0].rank
    if lay0.axis == axis or any(not lay.same_block(lay0) for lay in lays):
        return None
    args = [rb.local_block(x, lay0) for x in ins]
    return [(rb.emit(node, node.op, args)[0], lay0)]


@rule("Gather")
def _gather(rb: RankRebuild, node, ins):
    """Embedding lookups of split ids stay split; gathering along another axis keeps a data split."""
    (d, dl), (i, il) = ins
    ax = node.op.axis % node.inputs[0].rank
    if dl is None and il is not None:
        return [(rb.emit(node, node.op, [d, i])[0], il.at(ax + il.axis))]
    if dl is not None and il is None and dl.axis != ax:
        axis = dl.axis if dl.axis < ax else dl.axis + node.inputs[1].rank - 1
        return [(rb.emit(node, node.op, [d, i])[0], dl.at(axis))]
    return None
