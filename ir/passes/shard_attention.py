"""Tensor parallelism for attention: query heads split over TP ranks, KV heads split when they divide
and replicated (one KV head per rank group) when there are fewer KV heads than ranks, as vLLM does.

Planning walks back from each Attention's query/key/value to the projection weights that make each
head and slices their columns (and bias); the Attention rule then runs the rank's heads with the same
spec and fewer heads. The output projection becomes row-parallel by the Linear rule (shard_layout).
"""
from __future__ import annotations

from ..errors import IRError
from ..graph import Graph, Value
from ..ops import Attention
from .shard_layout import ELEMENTWISE, RankRebuild, Split, WeightSlice, blocks_of, entry_of, rule


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def head_axis(spec) -> int:
    return 1 if spec.layout == "bhsd" else 2


def kv_ranges(num_heads: int, kv_heads: int, tp: int, node) -> tuple[tuple[int, int], ...]:
    """The KV heads each TP rank needs: its own block when tp divides them, else the one KV head its
    query heads share (replicated over tp / kv_heads ranks)."""
    if kv_heads % tp == 0:
        per = kv_heads // tp
        return tuple((r * per, (r + 1) * per) for r in range(tp))
    if tp % kv_heads == 0:
        group = num_heads // kv_heads
        per_q = num_heads // tp
        return tuple(((r * per_q) // group, (r * per_q) // group + 1) for r in range(tp))
    legal = [t for t in divisors(num_heads) if kv_heads % t == 0 or t % kv_heads == 0]
    raise IRError(f"tp={tp} splits the {num_heads} query heads but neither divides nor is a multiple of the "
                  f"{kv_heads} KV heads; legal tp sizes: {legal}", node)


def plan_attention(graph: Graph, tp: int, slices: dict[str, WeightSlice]) -> list[str]:
    """Add the column slices of every Attention's Q/K/V projections to `slices`; returns notes."""
    notes, pending = [], {}
    for node in graph.attention_ops():
        if node.op.op_name != "Attention":
            continue
        s = node.spec
        if s.features_list() and getattr(s.kv_source, "kind", None) != "mla":
            notes.append(f"'{node.name}' ({s.variant}) runs replicated: no head split rule for this variant")
            continue
        if s.num_heads % tp:
            raise IRError(f"tp={tp} does not divide the {s.num_heads} query heads; legal tp sizes: "
                          f"{divisors(s.num_heads)}", node)
        per = s.num_heads // tp
        ax = head_axis(s)
        named = node.op.named_inputs(node)
        _require_split(named["query"], ax, tuple((r * per, (r + 1) * per) for r in range(tp)), slices, "tp", pending)
        if getattr(s.kv_source, "kind", None) == "mla":
            continue                                            # the MLA rule plans its own weights
        kv = kv_ranges(s.num_heads, s.num_kv_heads, tp, node)
        if s.num_kv_heads < tp:
            notes.append(f"'{node.name}': {s.num_kv_heads} KV heads over tp={tp}: each KV head replicated on "
                         f"{tp // s.num_kv_heads} ranks")
        for name in ("key", "value"):
            _require_split(named[name], ax, kv, slices, "tp", pending)
        notes.append(f"'{node.name}' ({'MHA' if s.num_kv_heads == s.num_heads else 'GQA'}): {per} of "
                     f"{s.num_heads} query heads and {kv[0][1] - kv[0][0]} of {s.num_kv_heads} KV heads per rank")
    return notes + resolve_fused(pending, slices)


def resolve_fused(pending: dict, slices: dict[str, WeightSlice]) -> list[str]:
    """Plan each fused projection once all its parts are known: every rank keeps, of the packed output
    features, the blocks its parts need (its Q heads, K heads and V heads), in order."""
    notes = []
    for u, axis, group, parts in pending.values():
        entries = tuple(entry_of(_merged(sorted(mine))) for mine in parts)
        _require_split(u, axis, entries, slices, group)
        p = u.producer
        notes.append(f"'{p.name if p else u.name}': fused projection split into {len(blocks_of(entries[0]))} "
                     "blocks per rank")
    return notes


def _merged(blocks: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for a, b in blocks:
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        elif not out or out[-1] != (a, b):
            out.append((a, b))
    return tuple(out)


def _require_split(v: Value | None, axis: int, ranges, slices: dict[str, WeightSlice], group: str,
                   pending: dict | None = None) -> None:
    """Walk back from `v` (wanted split along `axis` into `ranges`: per rank a (start, stop) or several)
    to weight constants and plan their slices. A slice of a fused projection (QKV packed in one Linear)
    is collected in `pending` until every slice is known (resolve_fused). Stops quietly where no rule
    applies: the rebuild then slices that value locally."""
    p = v.producer if v is not None else None
    if p is None:
        return
    name = p.op.op_name
    if name == "Constant":
        want = WeightSlice(axis, tuple(ranges), group)
        if slices.setdefault(p.op.key, want) != want:
            del slices[p.op.key]                                # wanted two ways: keep it whole
        return
    if name == "Transpose":
        _require_split(p.inputs[0], p.op.perm[axis], ranges, slices, group, pending)
    elif name == "Reshape":
        mapped = _reshape_back(p, axis, ranges)
        if mapped is not None:
            _require_split(p.inputs[0], mapped[0], mapped[1], slices, group, pending)
    elif name == "Slice" and axis != p.op.axis % v.rank:
        _require_split(p.inputs[0], axis, ranges, slices, group, pending)
    elif name == "Slice" and pending is not None and p.op.step == 1 and isinstance(p.op.start, int) \
            and p.op.start >= 0:                                # one part of a fused projection
        u = p.inputs[0]
        parts = pending.setdefault(id(u), (u, axis, group, [[] for _ in ranges]))[3]
        for mine, entry in zip(parts, ranges):
            mine.extend((p.op.start + a, p.op.start + b) for a, b in blocks_of(entry))
    elif name == "Concat" and axis != p.op.axis % v.rank:
        for x in p.inputs:
            _require_split(x, axis, ranges, slices, group, pending)
    elif name == "Rotary" and axis != v.rank - 1:
        _require_split(p.inputs[0], axis, ranges, slices, group, pending)
    elif name == "Linear" and axis == v.rank - 1:
        _require_split(p.inputs[1], 1, ranges, slices, group, pending)
        if p.op.has_bias:
            _require_split(p.inputs[2], 0, ranges, slices, group, pending)
    elif name in ELEMENTWISE:
        for x in p.inputs:
            ax = axis - (v.rank - x.rank)
            if ax >= 0 and x.shape[ax] == v.shape[axis]:
                _require_split(x, ax, ranges, slices, group, pending)


def _reshape_back(node, axis: int, ranges):
    """Input axis and ranges of a reshape whose output `axis` is the outer factor of one input axis
    (B, S, H*D) -> (B, S, H, D), or the same axis."""
    from .. import dims as D

    src, dst = node.inputs[0].shape, node.outputs[0].shape
    for b in range(len(src)):
        # a 1-sized axis (one decode token) leaves the product unchanged: the heads are further on
        if not D.equal(D.product(src[:b]), D.product(dst[:axis])) or (src[b] == 1 and dst[axis] != 1):
            continue
        if not (isinstance(src[b], int) and isinstance(dst[axis], int)) or src[b] % dst[axis]:
            return None
        f = src[b] // dst[axis]
        return b, tuple(entry_of(tuple((s * f, e * f) for s, e in blocks_of(en))) for en in ranges)
    return None


@rule("Attention")
def _attention(rb: RankRebuild, node, ins):
    """Run this rank's query heads and the KV heads they read, with the same spec and fewer heads."""
    s = node.spec
    names = s.input_names()
    got = dict(zip(names, ins))
    ql = got["query"][1]
    if ql is None:
        return None
    ax = head_axis(s)
    if ql.axis == 0:
        return _data_parallel(rb, node, ins, ql)
    if ql.axis != ax:
        return None
    if getattr(s.kv_source, "kind", None) == "mla" and s.head_mixing is None and not s.score_mods:
        from .shard_mla import mla_heads

        return mla_heads(rb, node, ins, ql)
    if s.features_list():
        return None
    group = s.num_heads // s.num_kv_heads
    k0, k1 = ql.start // group, (ql.stop - 1) // group + 1
    local_q = ql.stop - ql.start
    if local_q % (k1 - k0) or any((ql.start + i) // group - k0 != i // (local_q // (k1 - k0)) for i in range(local_q)):
        return None
    kvl = Split(ax, k0, k1, s.num_kv_heads, ql.group, ql.ranks, ql.index)
    args = []
    for name, item in zip(names, ins):
        if name in ("query",):
            args.append(item[0])
        elif name in ("key", "value", "past_key", "past_value"):
            args.append(rb.local_block(item, kvl))
        elif name == "mask" and item[0].rank == 4 and item[0].shape[1] != 1:
            args.append(rb.local_block(item, ql.at(1)))
        else:
            args.append(rb.replicated(item))
    spec = s.replace(num_heads=local_q, num_kv_heads=k1 - k0)
    outs = rb.emit(node, Attention(spec=spec, tiling=node.op.tiling), args)
    return [(outs[0], ql)] + [(o, kvl) for o in outs[1:]]


def _data_parallel(rb: RankRebuild, node, ins, ql: Split):
    """Requests split over ranks (DP attention, as DeepSeek serves MLA): each rank attends its own batch
    rows with every head; batch-sized inputs are cut to the same rows."""
    args = []
    for (v, lay), old in zip(ins, node.inputs):
        if old.rank >= 1 and old.shape[0] == node.inputs[0].shape[0] and old.shape[0] != 1:
            args.append(rb.local_block((v, lay), ql.at(0)))
        else:
            args.append(rb.replicated((v, lay)))
    outs = rb.emit(node, node.op, args)
    return [(o, ql.at(0)) for o in outs]
