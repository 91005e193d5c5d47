"""Expert parallelism: the experts of each MoE layer spread over EP ranks, tokens dispatched to the
expert owners and the expert outputs combined with all-to-alls.

MoE lands in the IR as stacked expert weights (E, K, N) applied to every routed row by one batched
MatMul, a Where keeping each row's own expert and a sum over experts (transformers' grouped_mm path,
attncc/frontends/torch_converters/moe.py). Rank i keeps experts [i*E/ep, (i+1)*E/ep): its sum over
them is one term (Partial) of the full sum. Partials flow through linear ops (the routing-weight
product, the un-permute, the sum over top-k) and are combined where something non-linear reads them:
an all-to-all that hands every rank the summed block of its rows (a reduce-scatter spelled as
all-to-all + local sum, so the rows after it are spread over the EP ranks, as DP attention holds
them). An expert MatMul reading rows spread that way first dispatches them: an all-to-all in which
every rank sends its rows to every expert owner. Shapes are static, so the dispatch carries every
row to every owner (the capacity-free upper bound of a routed dispatch); the expert Where still
picks each row's own experts, so the result is exact.
"""
from __future__ import annotations

from ..errors import IRError
from ..graph import Graph, Value
from ..ops import AllReduce, AllToAll, Expand, Reduce, Reshape
from .shard_attention import divisors
from .shard_layout import PARTIAL_RULE, Partial, RankRebuild, Split, WeightSlice, rule

LINEAR_IN_FIRST = ("Slice", "Reshape", "Transpose", "Gather")


def expert_matmuls(graph: Graph):
    """MatMul nodes applying stacked expert weights (E, K, N) (a constant) to rows broadcast over experts."""
    for n in graph.find("MatMul"):
        a, b = n.inputs
        if b.producer is not None and b.producer.op.op_name == "Constant" and b.rank == 3 and a.rank == 3 \
                and a.shape[0] == 1 and isinstance(b.shape[0], int) and b.shape[0] > 1:
            yield n


def plan_moe(graph: Graph, ep: int, slices: dict[str, WeightSlice]) -> list[str]:
    """Add the expert slices of every MoE layer to `slices`; returns notes."""
    found = list(expert_matmuls(graph))
    if not found:
        raise IRError(f"shard: ep={ep} but graph '{graph.name}' has no mixture-of-experts layer (stacked expert "
                      "weights (E, K, N) applied by a MatMul); use ep=1")
    for n in found:
        experts = n.inputs[1].shape[0]
        if experts % ep:
            raise IRError(f"ep={ep} does not divide the {experts} experts; legal ep sizes: {divisors(experts)}", n)
        per = experts // ep
        slices[n.inputs[1].producer.op.key] = WeightSlice(0, tuple((i * per, (i + 1) * per) for i in range(ep)), "ep")
    return [f"MoE: {len(found)} expert matmuls, {found[0].inputs[1].shape[0]} experts over ep={ep}; dispatch "
            "all-to-alls carry every routed row to every expert owner (static shapes: the capacity-free upper "
            "bound; a routed dispatch sends each row only to the owners of its top-k experts)"]


def combine(rb: RankRebuild, v: Value, lay: Partial) -> tuple[Value, Split | None]:
    """Sum the Partial terms so each rank ends with its block of rows: Reshape (.., ep, n/ep, ..),
    AllToAll (block j to rank j), sum over the sources. Without a dividing axis: AllReduce."""
    ep = lay.ranks
    axis = next((a for a in range(max(v.rank - 1, 1)) if isinstance(v.shape[a], int) and v.shape[a] % ep == 0), None)
    if axis is None:
        return rb.emit1(AllReduce(ep, "sum", lay.group), [v], f"allreduce_{v.name}"), None
    n = v.shape[axis]
    blocks = rb.emit1(Reshape(tuple(v.shape[:axis]) + (ep, n // ep) + tuple(v.shape[axis + 1:])), [v],
                      f"combine_split_{v.name}")
    moved = rb.emit1(AllToAll(ep, axis, axis, lay.group), [blocks], f"combine_{v.name}")
    out = rb.emit1(Reduce("sum", (axis,), False), [moved], f"combine_sum_{v.name}")
    per = n // ep
    return out, rb.split_of(lay.group, axis, n, lay.index * per, (lay.index + 1) * per)


def dispatch(rb: RankRebuild, v: Value, lay: Split) -> Value:
    """Every rank's rows to every expert owner: copies (.., ep, m, ..) through an AllToAll, concatenated
    in source order, i.e. the whole tensor on every owner."""
    a, ep = lay.axis, lay.ranks
    shape = tuple(v.shape)
    one = rb.emit1(Reshape(shape[:a] + (1,) + shape[a:]), [v], f"dispatch_copy_{v.name}")
    copies = rb.emit1(Expand(shape[:a] + (ep,) + shape[a:]), [one], f"dispatch_copies_{v.name}")
    moved = rb.emit1(AllToAll(ep, a, a + 1, lay.group), [copies], f"dispatch_{v.name}")
    return rb.emit1(Reshape(shape[:a] + (lay.full,) + shape[a + 1:]), [moved], f"dispatch_rows_{v.name}")


@rule("MatMul")
def _matmul(rb: RankRebuild, node, ins):
    (a, al), (b, bl) = ins
    if isinstance(bl, Split) and bl.axis == 0 and b.rank == 3 and node.inputs[0].shape[0] == 1:
        if isinstance(al, Split):
            if al.group != bl.group or al.axis == a.rank - 1 or not al.even:
                return None
            a = dispatch(rb, a, al)
        return [(rb.emit(node, node.op, [a, b])[0], bl)]
    return None


def partial_rule(rb: RankRebuild, node, ins):
    """Keep a Partial through ops linear in it (the sum over ranks commutes with them); None otherwise."""
    name = node.op.op_name
    lays = [None if x is None else x[1] for x in ins]
    parts = [l for l in lays if isinstance(l, Partial)]
    if any(p != parts[0] for p in parts):
        return None
    out = parts[0]
    vals = [None if x is None else x[0] for x in ins]
    others_whole = all(l is None for l in lays if not isinstance(l, Partial))
    if name in LINEAR_IN_FIRST:
        ok = isinstance(lays[0], Partial) and others_whole
    elif name == "Reduce":
        ok = node.op.fn == "sum"
    elif name == "Binary" and node.op.fn in ("add", "sub"):
        ok = all(isinstance(l, Partial) for l in lays)
    elif name == "Binary" and node.op.fn in ("mul", "div"):
        ok = len(parts) == 1 and others_whole and (isinstance(lays[0], Partial) or node.op.fn == "mul")
    elif name in ("MatMul", "Linear"):
        ok = len(parts) == 1 and others_whole and not (name == "Linear" and (node.op.has_bias or
                                                                             not isinstance(lays[0], Partial)))
    elif name == "Cast":
        ok = node.inputs[0].type.is_float and node.op.dtype in ("float32", "float64", "float16", "bfloat16")
    else:
        ok = False
    if not ok:
        return None
    return [(v, out) for v in rb.emit(node, node.op, vals)]


PARTIAL_RULE[0] = partial_rule
