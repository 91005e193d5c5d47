"""kernel_launches: the kernels a graph runs as, in launch order, and which IR ops each covers.

The one grouping decision read by the backend core (it builds one kernel per launch; its plan has one
call per launch) and by the cost report (one row per launch). Free views (Reshape), constants and
in-place KV-cache writes' data are no launch, nor are slices folded into the attention prologue kernels
that read them (folded.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph, Node
from .attention_parts import PART_CLASS, attention_parts
from .folded import folded_slices
from .groups import FusionRules, classify, plan_groups


@dataclass
class Launch:
    """One kernel call. `nodes`: the IR nodes it computes (the last writes its output); `part`: for ops that
    run as several kernels (Attention, IndexCopy), which one; `kernel_class` prices its launch overhead."""

    name: str
    kernel_class: str   # matmul | gated | conv | rows | injective | attention | layout | rope | index_copy | reference
    nodes: list[Node] = field(default_factory=list)
    part: str = ""

    @property
    def root(self) -> Node:
        return self.nodes[-1]

    @property
    def op_names(self) -> list[str]:
        return [n.op.op_name for n in self.nodes]


def in_place(graph: Graph, node: Node) -> bool:
    """True when IndexCopy `node` may overwrite its data input: a mutated graph input whose only reader is `node`."""
    data = node.inputs[0]
    mutated = {name for _, name in graph.metadata.get("input_mutations", [])}
    if data.producer is not None or data.name not in mutated:
        return False
    readers = [n for n in graph.nodes if any(v is data for v in n.inputs)]
    return readers == [node] and not any(o is data for o in graph.outputs)


def symbolic_shapes(graph: Graph) -> dict[int, tuple]:
    """id(Value) -> the IR shape with canonical symbolic dims (what a shape-generic build groups by)."""
    from .. import dims as D

    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs if o is not None]
    return {id(v): tuple(D.canonical(d) for d in v.shape) for v in values}


def kernel_launches(graph: Graph, shapes: dict[int, tuple] | None = None,
                    rules: FusionRules = FusionRules()) -> list[Launch]:
    """The kernels `graph` runs as on a target with `rules`, in launch order.

    `shapes`: id(Value) -> shape (default: the IR's symbolic shapes). Raises ValueError naming the node for
    an op no kernel class covers."""
    shapes = shapes if shapes is not None else symbolic_shapes(graph)
    order, group_of = plan_groups(graph, shapes, rules.gate_cols)
    folded = folded_slices(graph, shapes, rules, group_of)
    out: list[Launch] = []
    for node in order:
        kind = classify(node)
        if kind in ("const", "view") or node.name in folded:
            continue
        if kind == "attention":
            out += [Launch(f"{node.name}.{p}" if p not in ("attention", "attention_te") else node.name,
                           PART_CLASS[p], [node], p) for p in attention_parts(node, shapes, rules)]
        elif kind == "index_copy":
            if not in_place(graph, node):
                out.append(Launch(f"{node.name}.copy", "layout", [node], "copy"))
            out.append(Launch(node.name, "index_copy", [node], "rows"))
        elif kind == "unsupported":
            raise ValueError(f"node {node.name!r}: op {node.op.op_name} belongs to no kernel class")
        else:
            g = group_of[node.name]
            if g.root is node:
                out.append(Launch(node.name, g.kind, list(g.nodes)))
    return out
