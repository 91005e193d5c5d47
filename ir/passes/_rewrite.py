"""Small graph-matching helpers shared by the fusion passes (not a pass)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..graph import Graph, Node, Value

SWAP_SEQ_HEADS = (0, 2, 1, 3)  # bhsd <-> bshd; its own inverse


def producer_op(v: Value | None, op_name: str) -> Node | None:
    """The node producing `v` when it is an `op_name` op, else None."""
    if v is None or v.producer is None or v.producer.op.op_name != op_name:
        return None
    return v.producer


def is_swap_transpose(v: Value | None) -> bool:
    """Whether `v` is Transpose(perm=(0, 2, 1, 3)) of something."""
    p = producer_op(v, "Transpose")
    return p is not None and tuple(p.op.perm) == SWAP_SEQ_HEADS


def constant_array(graph: Graph, v: Value | None) -> np.ndarray | None:
    """The data of a Constant-produced value, else None."""
    p = producer_op(v, "Constant")
    return None if p is None else graph.constants[p.op.key]


def use_count(graph: Graph, v: Value) -> int:
    """Number of uses of `v` (node input slots plus graph outputs)."""
    return sum(1 for n in graph.nodes for x in n.inputs if x is v) + sum(1 for o in graph.outputs if o is v)


def release(graph: Graph, node: Node) -> None:
    """Drop `node` from the graph and free its node/value names for a replacement to reuse.
    Its outputs must be re-pointed (replace_all_uses) by the caller."""
    graph.nodes = [n for n in graph.nodes if n is not node]
    for name in [node.name] + [v.name for v in node.outputs]:
        graph._names.discard(name)


def replace_node(graph: Graph, old: Node, op, inputs: list[Value | None]) -> list[Value]:
    """Replace `old` by a node applying `op` to `inputs`, keeping old's name and source, and
    point every use of old's outputs at the new ones."""
    release(graph, old)
    new = graph.add(op, inputs, name=old.name, source=old.source)
    for a, b in zip(old.outputs, new):
        graph.replace_all_uses(a, b)
    return new


def with_spec(node: Node, **changes):
    """node.op (an Attention) with spec fields changed."""
    return dataclasses.replace(node.op, spec=node.op.spec.replace(**changes))
