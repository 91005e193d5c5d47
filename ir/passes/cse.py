"""cse: common-subexpression elimination.

Two nodes with the same op (type and attributes) reading the same values compute the same
thing; uses of the later one are pointed at the first. Constants with identical dtype, shape
and bytes (e.g. the RoPE tables or masks a frontend emits once per layer) are merged too.
Requires: nothing. Guarantees: same outputs; no two live nodes are structurally identical.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar

from ..graph import Graph, Value
from .base import Pass, register_pass


def _constant_key(graph: Graph, key: str) -> tuple:
    a = graph.constants[key]
    if a.size > 1 and not any(a.strides):
        # a weight imported without data (meta device: a zero-stride placeholder) equals no other weight;
        # hashing it would also materialize it
        return ("Constant", key)
    return ("Constant", str(a.dtype), tuple(a.shape), hashlib.sha1(a.tobytes()).hexdigest())


@register_pass
@dataclass(frozen=True)
class CommonSubexpressionElimination(Pass):
    """Merge structurally identical nodes and identical constants."""

    name: ClassVar[str] = "cse"
    merge_constants: bool = True

    def run(self, graph: Graph) -> Graph:
        seen: dict[tuple, list[Value]] = {}
        for node in graph.topological():
            if node.op.op_name == "Constant":
                if not self.merge_constants:
                    continue
                key = _constant_key(graph, node.op.key)
            else:
                attrs = json.dumps(node.op.attrs(), sort_keys=True, default=str)
                key = (node.op.op_name, attrs, tuple(id(v) if v is not None else None for v in node.inputs))
            first = seen.setdefault(key, node.outputs)
            if first is not node.outputs:
                for old, new in zip(node.outputs, first):
                    graph.replace_all_uses(old, new)
        graph.dead_code_elimination()
        return graph
