"""Megatron tensor parallelism for MLPs: the projections into the hidden features (up, gate, fc1) are
column-parallel, the projection out (down, fc2) row-parallel, with one all-reduce after it.

An MLP is found by shape, not by name: a Linear whose input is an elementwise function (activation,
gating product, ...) of one or more Linears with constant weights that produce its input features.
"""
from __future__ import annotations

from ..errors import IRError
from ..graph import Graph, Node
from .shard_attention import divisors
from .shard_layout import ELEMENTWISE, WeightSlice, entry_of


def _is_projection(p, width) -> bool:
    return p is not None and p.op.op_name == "Linear" and p.inputs[1].producer is not None \
        and p.inputs[1].producer.op.op_name == "Constant" and p.outputs[0].shape[-1] == width


def _column_leaves(graph: Graph, down: Node) -> list[Node] | None:
    """The Linears feeding `down` through elementwise ops only (None when anything else feeds it); a
    slice of a fused projection (gate and up packed in one Linear, chunked) is the pair (Linear, start)."""
    features = down.inputs[1].shape[0]
    leaves, seen, stack = [], set(), [down.inputs[0]]
    while stack:
        v = stack.pop()
        p = v.producer
        if p is None or id(p) in seen:
            if p is None:
                return None
            continue
        seen.add(id(p))
        if p.op.op_name == "Linear" and p.inputs[1].producer is not None \
                and p.inputs[1].producer.op.op_name == "Constant" and p.outputs[0].shape[-1] == features:
            leaves.append(p)
        elif p.op.op_name == "Slice" and p.op.axis % v.rank == v.rank - 1 and p.op.step == 1 \
                and isinstance(p.op.start, int) and p.op.start >= 0 and _is_projection(p.inputs[0].producer,
                                                                                      p.inputs[0].shape[-1]):
            leaves.append((p.inputs[0].producer, p.op.start))
        elif p.op.op_name == "Reshape" and p.inputs[0].rank and p.inputs[0].shape[-1] == features:
            stack.append(p.inputs[0])                           # (tokens, F) <-> (B, S, F)
        elif p.op.op_name in ELEMENTWISE:
            for x in p.inputs:
                if x.rank and x.shape[-1] == features:
                    stack.append(x)
                elif x.rank and (x.shape[-1] != 1 or x.producer is None or x.producer.op.op_name != "Constant"):
                    return None                                 # e.g. a norm's statistic over the features
        elif p.op.op_name == "Constant":
            continue                                            # a per-feature constant: sliced by the rebuild
        else:
            return None
    return leaves or None


def plan_mlp(graph: Graph, tp: int, slices: dict[str, WeightSlice]) -> list[str]:
    """Add the column slices of every MLP's input projections to `slices`; returns notes."""
    notes = []
    for down in graph.find("Linear"):
        w = down.inputs[1].producer
        if w is None or w.op.op_name != "Constant" or w.op.key in slices:
            continue
        leaves = _column_leaves(graph, down)
        if not leaves:
            continue
        # per projection, per rank: the feature blocks it keeps (several for a fused gate+up)
        blocks: dict[int, tuple[Node, list[list[tuple[int, int]]]]] = {}
        features = down.inputs[1].shape[0]
        if not isinstance(features, int) or features % tp:
            raise IRError(f"tp={tp} does not divide the {features} hidden features of this MLP "
                          f"(down projection of {', '.join(_leaf(n).name for n in leaves)}); legal tp sizes: "
                          f"{divisors(features) if isinstance(features, int) else [1]}", down)
        per = features // tp
        for leaf in leaves:
            node, start = (leaf, 0) if isinstance(leaf, Node) else leaf
            mine = blocks.setdefault(id(node), (node, [[] for _ in range(tp)]))[1]
            for r in range(tp):
                mine[r].append((start + r * per, start + (r + 1) * per))
        if any(node.inputs[1].producer.op.key in slices for node, _ in blocks.values()):
            continue
        for node, mine in blocks.values():
            ranges = tuple(entry_of(tuple(sorted(set(m)))) for m in mine)
            slices[node.inputs[1].producer.op.key] = WeightSlice(1, ranges, "tp")
            if node.op.has_bias and node.inputs[2].producer is not None \
                    and node.inputs[2].producer.op.op_name == "Constant":
                slices[node.inputs[2].producer.op.key] = WeightSlice(0, ranges, "tp")
        names = "+".join(node.name for node, _ in blocks.values())
        notes.append(f"MLP {names} -> {down.name}: column/row parallel over tp={tp}")
    return notes


def _leaf(leaf) -> Node:
    return leaf if isinstance(leaf, Node) else leaf[0]


def _through_pointwise(v):
    """The value `v` is a pointwise function of (softcap, scale, cast...), and that function's nodes."""
    while v.producer is not None and v.producer.op.op_name in ELEMENTWISE:
        live = [x for x in v.producer.inputs if x.producer is None or x.producer.op.op_name != "Constant"]
        if len(live) != 1:
            break
        v = live[0]
    return v


def _reads_attention(v) -> bool:
    for _ in range(4):                       # o_proj reads attention heads through a reshape/transpose
        p = v.producer
        if p is None:
            return False
        if p.op.op_name in ("Attention", "FusedAttention"):
            return True
        if p.op.op_name not in ("Reshape", "Transpose"):
            return False
        v = p.inputs[0]
    return False


def plan_output_projection(graph: Graph, tp: int, slices: dict[str, WeightSlice]) -> list[str]:
    """The LM head (a Linear making a graph output, e.g. logits) is column-parallel over the vocabulary,
    as Megatron's output layer: each rank keeps its block of the logits (ShardedProgram.output_shards)."""
    notes = []
    for out in graph.outputs:
        v = _through_pointwise(out)
        p = v.producer
        if p is None or p.op.op_name != "Linear" or p.op.has_bias or p.inputs[1].producer is None \
                or p.inputs[1].producer.op.op_name != "Constant" or p.inputs[1].producer.op.key in slices \
                or _column_leaves(graph, p) is not None or _reads_attention(p.inputs[0]):
            continue
        vocab = p.inputs[1].shape[1]
        if not isinstance(vocab, int) or vocab % tp:
            notes.append(f"'{p.name}': output projection of {vocab} features kept whole (tp={tp} does not divide it)")
            continue
        per = vocab // tp
        slices[p.inputs[1].producer.op.key] = WeightSlice(1, tuple((r * per, (r + 1) * per) for r in range(tp)), "tp")
        notes.append(f"'{p.name}': output projection column-parallel, {per} of {vocab} features per rank")
    return notes
