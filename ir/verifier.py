"""Graph verifier: structural rules plus every op's own `verify`. Errors name the node and rule."""
from __future__ import annotations

from .errors import IRError
from .graph import Graph


def verify_graph(graph: Graph) -> None:
    """Raise IRError on the first broken rule.

    Rules: unique node and value names; every input defined before use (graph input,
    constant or an earlier node's output; no cycles); each value produced once and
    its `producer` points at the producing node; constants exist with matching dtype and
    shape; graph outputs are defined; op-level rules (`Op.verify`: arity, attributes, types).
    """
    names: set[str] = set()
    defined: set[int] = set()
    for v in graph.inputs:
        if v.name in names:
            raise IRError(f"graph input name '{v.name}' is used twice")
        names.add(v.name)
        defined.add(id(v))
    node_names: set[str] = set()
    for n in graph.nodes:
        if n.name in node_names:
            raise IRError("node name is used twice", n)
        node_names.add(n.name)
    for n in graph.topological():
        for i, v in enumerate(n.inputs):
            if v is not None and id(v) not in defined:
                where = f"produced by '{v.producer.name}' which is not in the graph" if v.producer else "not a graph input"
                raise IRError(f"input {i} '{v.name}' is used before it is defined ({where})", n)
        n.op.verify(n)
        for v in n.outputs:
            if v.producer is not n:
                raise IRError(f"output '{v.name}' does not record this node as its producer", n)
            if v.name in names and v.name != n.name or id(v) in defined:
                raise IRError(f"value name '{v.name}' is defined twice", n)
            names.add(v.name)
            defined.add(id(v))
        if n.op.op_name == "Constant":
            arr = graph.constants.get(n.op.key)
            if arr is None:
                raise IRError(f"constant key '{n.op.key}' has no data in graph.constants", n)
            if tuple(arr.shape) != tuple(n.op.shape) or str(arr.dtype) != _np_name(n.op.dtype):
                raise IRError(f"constant data {arr.dtype}{list(arr.shape)} differs from the op's {n.op.dtype}{list(n.op.shape)}", n)
    for v in graph.outputs:
        if id(v) not in defined:
            raise IRError(f"graph output '{v.name}' is not defined by any node or input")
    if not graph.outputs:
        raise IRError(f"graph '{graph.name}' has no outputs")


def _np_name(dtype: str) -> str:
    from .types import numpy_dtype

    return str(numpy_dtype(dtype))
