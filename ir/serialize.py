"""JSON round-trip of whole graphs (constants base64-encoded)."""
from __future__ import annotations

import base64
import json

import numpy as np

from .graph import Graph, Node, Value
from .ops import OP_REGISTRY
from .types import TensorType, numpy_dtype


def _type(t: TensorType) -> dict:
    return {"dtype": t.dtype, "shape": list(t.shape)}


def graph_to_dict(graph: Graph) -> dict:
    """Plain-data form of a graph; `graph_from_dict(graph_to_dict(g))` prints identically to g."""
    return {
        "name": graph.name,
        "inputs": [{"name": v.name, **_type(v.type)} for v in graph.inputs],
        "nodes": [{"name": n.name, "op": n.op.op_name, "attrs": n.op.attrs(), "source": n.source,
                   "inputs": [None if v is None else v.name for v in n.inputs],
                   "outputs": [{"name": v.name, **_type(v.type)} for v in n.outputs]} for n in graph.topological()],
        "outputs": [v.name for v in graph.outputs],
        "constants": {k: {"dtype": str(a.dtype), "shape": list(a.shape),
                          "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()}
                      for k, a in graph.constants.items()},
        "diagnostics": graph.diagnostics,
        "metadata": graph.metadata,
    }


def graph_from_dict(d: dict) -> Graph:
    """Inverse of `graph_to_dict`."""
    g = Graph(d["name"], diagnostics=list(d.get("diagnostics", [])), metadata=dict(d.get("metadata", {})))
    env: dict[str, Value] = {}
    for i in d["inputs"]:
        v = Value(i["name"], TensorType(i["dtype"], tuple(i["shape"])))
        g.inputs.append(v)
        env[v.name] = v
        g._names.add(v.name)
    for k, c in d["constants"].items():
        dt = numpy_dtype(c["dtype"]) if c["dtype"] in ("bfloat16",) else np.dtype(c["dtype"])
        g.constants[k] = np.frombuffer(base64.b64decode(c["data"]), dtype=dt).reshape(c["shape"]).copy()
    for nd in d["nodes"]:
        op = OP_REGISTRY[nd["op"]].from_attrs(nd["attrs"])
        node = Node(nd["name"], op, [None if x is None else env[x] for x in nd["inputs"]], [], nd.get("source"))
        node.outputs = [Value(o["name"], TensorType(o["dtype"], tuple(o["shape"])), node) for o in nd["outputs"]]
        for v in node.outputs:
            env[v.name] = v
            g._names.add(v.name)
        g._names.add(node.name)
        g.nodes.append(node)
    g.outputs = [env[x] for x in d["outputs"]]
    return g


def graph_to_json(graph: Graph) -> str:
    return json.dumps(graph_to_dict(graph))


def graph_from_json(text: str) -> Graph:
    return graph_from_dict(json.loads(text))
