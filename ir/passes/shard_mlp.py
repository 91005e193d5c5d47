"""Megatron tensor parallelism for MLPs: the projections into the hidden features (up, gate, fc1) are
column-parallel, the projection out (down, fc2) row-parallel, with one all-reduce after it.

An MLP is found by shape, not by name: a Linear whose input is an elementwise function (activation,
gating product, ...) of one or more Linears with constant weights that produce its input features.
"""
from __future__ import annotations

from ..errors import IRError
from ..graph import Graph, Node
from .shard_attention import divisors
from .shard_layout import ELEMENTWISE, WeightSlice


def _column_leaves(graph: Graph, down: Node) -> list[Node] | None:
    """The Linears feeding `down` through elementwise ops only (None when anything else feeds it)."""
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
        if not leaves or any(leaf.inputs[1].producer.op.key in slices for leaf in leaves):
            continue
        features = down.inputs[1].shape[0]
        if not isinstance(features, int) or features % tp:
            raise IRError(f"tp={tp} does not divide the {features} hidden features of this MLP "
                          f"(down projection of {', '.join(n.name for n in leaves)}); legal tp sizes: "
                          f"{divisors(features) if isinstance(features, int) else [1]}", down)
        per = features // tp
        ranges = tuple((r * per, (r + 1) * per) for r in range(tp))
        for leaf in leaves:
            slices[leaf.inputs[1].producer.op.key] = WeightSlice(1, ranges, "tp")
            if leaf.op.has_bias and leaf.inputs[2].producer is not None \
                    and leaf.inputs[2].producer.op.op_name == "Constant":
                slices[leaf.inputs[2].producer.op.key] = WeightSlice(0, ranges, "tp")
        notes.append(f"MLP {'+'.join(n.name for n in leaves)} -> {down.name}: column/row parallel over tp={tp}")
    return notes
