"""Fused projections under tensor parallelism: one Linear packing Q, K and V (GPT-2's c_attn, Phi-3's
qkv_proj, Falcon's query_key_value) keeps on each rank the blocks of its output that the rank's heads
need, concatenated (a `Pieces` layout); the Slices that unpack Q, K and V then become local slices and
ordinary head splits (shard_attention plans the blocks through resolve_fused).
"""
from __future__ import annotations

from .. import dims as D
from ..errors import IRError
from ..graph import Value
from ..ops import AllGather, Concat, Linear, Reshape, Slice
from .shard_layout import ELEMENTWISE, PIECES_RULE, Pieces, RankRebuild, Split, weight_blocks


def whole(rb: RankRebuild, v: Value, lay: Pieces) -> Value:
    """The whole tensor: gather every rank's blocks, then put the blocks back in feature order."""
    sizes = [sum(b - a for a, b in blocks) for blocks in lay.by_rank]
    if len(set(sizes)) != 1:
        raise IRError(f"value '{v.name}' holds blocks of different sizes on different ranks ({sizes}); "
                      "supported: fused projections whose blocks are the same size on every rank", rb.node)
    gathered = rb.emit1(AllGather(lay.ranks, lay.axis, lay.group), [v], f"allgather_{v.name}")
    found = []                                           # (global start, global stop, offset in gathered)
    for r, blocks in enumerate(lay.by_rank):
        off = r * sizes[0]
        for a, b in blocks:
            found.append((a, b, off))
            off += b - a
    parts, covered = [], 0
    for a, b, off in sorted(found):
        if a == covered:                                 # a block held by several ranks is taken once
            parts.append(rb.emit1(Slice(lay.axis, off, off + b - a), [gathered], f"reorder_{v.name}"))
            covered = b
    if covered != lay.full:
        raise IRError(f"value '{v.name}': the ranks' blocks cover {covered} of {lay.full} features", rb.node)
    return parts[0] if len(parts) == 1 else rb.emit1(Concat(lay.axis), parts, f"whole_{v.name}")


def local_pieces(rb: RankRebuild, item, lay: Pieces) -> Value:
    """A whole value cut to this rank's blocks (constants sliced, others by Slice + Concat)."""
    v, have = item
    if have is not None:
        if have == lay:
            return v
        v = rb.replicated(item)
    if v.shape[lay.axis] == 1:
        return v
    p = v.producer
    if p is not None and p.op.op_name == "Constant":
        return rb.g.add_constant(weight_blocks(rb.g.constants[p.op.key], lay.axis, lay.blocks),
                                 name=f"{p.op.key}_r{lay.index}")
    parts = [rb.emit1(Slice(lay.axis, a, b), [v], f"piece_{v.name}") for a, b in lay.blocks]
    return parts[0] if len(parts) == 1 else rb.emit1(Concat(lay.axis), parts, f"pieces_{v.name}")


def _slice(rb: RankRebuild, node, x: Value, lay: Pieces):
    """Slice along the blocks' axis: the rank's part of [start, stop) is a contiguous local slice."""
    op = node.op
    full = lay.full
    start, stop = op.start, full if op.stop is None else op.stop
    if op.step != 1 or not isinstance(start, int) or not isinstance(stop, int):
        return None
    start, stop = (start + full if start < 0 else start), min(stop + full if stop < 0 else stop, full)
    hits, off = [], 0
    for a, b in lay.blocks:
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            hits.append((lo, hi, off + lo - a, off + hi - a))
        off += b - a
    if not hits or any(h[0] != g[1] or h[2] != g[3] for g, h in zip(hits, hits[1:])):
        return None
    out = rb.emit(node, Slice(op.axis, hits[0][2], hits[-1][3]), [x])[0]
    return [(out, Split(lay.axis, hits[0][0] - start, hits[-1][1] - start, stop - start, lay.group, lay.ranks,
                        lay.index))]


def pieces_rule(rb: RankRebuild, node, ins):
    """Keep Pieces through the ops between a fused projection and its unpacking slices; None otherwise."""
    name = node.op.op_name
    lays = [None if x is None else x[1] for x in ins]
    lay = next(l for l in lays if isinstance(l, Pieces))
    x = ins[0][0]
    if name == "Linear" and isinstance(lays[1], Pieces) and lays[1].axis == 1 and \
            (lays[0] is None or isinstance(lays[0], Split) and lays[0].axis != node.inputs[0].rank - 1):
        if lays[0] is not None:
            x = rb.gather(x, lays[0])                    # sequence-parallel tokens: gathered before the projection
        args = [x, ins[1][0]] + ([local_pieces(rb, ins[2], lays[1].at(0))] if node.op.has_bias else [])
        return [(rb.emit(node, Linear(node.op.has_bias), args)[0], lays[1].at(node.inputs[0].rank - 1))]
    if name == "Transpose" and lays[0] is lay:
        return [(rb.emit(node, node.op, [x])[0], lay.at(list(node.op.perm).index(lay.axis)))]
    if name == "Slice" and lays[0] is lay:
        if node.op.axis % node.inputs[0].rank == lay.axis:
            return _slice(rb, node, x, lay)
        return [(rb.emit(node, node.op, [x])[0], lay)]
    if name == "Reshape" and lays[0] is lay:
        src, dst = node.inputs[0].shape, node.outputs[0].shape
        for a in range(len(dst)):
            if dst[a] == lay.full and D.equal(D.product(dst[:a]), D.product(src[:lay.axis])):
                shape = list(node.op.shape)
                if shape[a] != -1:
                    shape[a] = sum(b - s for s, b in lay.blocks)
                return [(rb.emit(node, Reshape(tuple(shape)), [x])[0], lay.at(a))]
        return None
    if name in ELEMENTWISE:
        out_rank = node.outputs[0].rank
        axis = lay.axis + out_rank - node.inputs[lays.index(lay)].rank
        args = []
        for (v, l), old in zip(ins, node.inputs):
            ax = axis - (out_rank - old.rank)
            if isinstance(l, Pieces):
                if l.at(ax) != lay.at(ax):
                    return None
                args.append(v)
            elif l is None:
                args.append(v if ax < 0 or old.shape[ax] == 1 else local_pieces(rb, (v, None), lay.at(ax)))
            else:
                return None
        return [(o, lay.at(axis)) for o in rb.emit(node, node.op, args)]
    return None


PIECES_RULE[0] = pieces_rule
