"""Graph: values, nodes, builder helpers, topological iteration and DCE (on networkx)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import networkx as nx
import numpy as np

from .errors import IRError
from .types import TensorType

if TYPE_CHECKING:
    from .ops.base import Op


def upstream_nodes(values) -> dict[int, "Node"]:
    """Every node that (transitively) produces one of `values`, keyed by id (graph inputs have no producer)."""
    found: dict[int, Node] = {}
    stack = [v.producer for v in values if v is not None and v.producer is not None]
    while stack:
        n = stack.pop()
        if id(n) in found:
            continue
        found[id(n)] = n
        stack.extend(v.producer for v in n.inputs if v is not None and v.producer is not None)
    return found


class Value:
    """An SSA value: produced by one node (or a graph input / constant), used by many."""

    __slots__ = ("name", "type", "producer")

    def __init__(self, name: str, type: TensorType, producer: "Node | None" = None):
        self.name = name
        self.type = type
        self.producer = producer

    @property
    def shape(self):
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return self.type.rank

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


class Node:
    """One op application. `source` names the frontend node it came from (for errors)."""

    __slots__ = ("name", "op", "inputs", "outputs", "source")

    def __init__(self, name: str, op: "Op", inputs: list[Value | None], outputs: list[Value], source: str | None = None):
        self.name = name
        self.op = op
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.source = source

    @property
    def spec(self):
        """The AttentionSpec of an Attention node (AttributeError otherwise)."""
        return self.op.spec

    @property
    def kind(self) -> str:
        return self.op.op_name

    def __repr__(self) -> str:
        return f"Node({self.name}: {self.op.op_name})"


@dataclass
class Graph:
    """A dataflow graph. Nodes are kept in insertion order; `topological()` orders them."""

    name: str = "main"
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    # free-form facts recorded by frontends and passes (e.g. why a softmax was not lifted)
    diagnostics: list[dict] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    _names: set = field(default_factory=set, repr=False)
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(), repr=False)

    # ---- naming -------------------------------------------------------------
    def fresh_name(self, hint: str = "v") -> str:
        """A value/node name not used yet in this graph."""
        hint = "".join(c if c.isalnum() or c in "_." else "_" for c in hint) or "v"
        if hint not in self._names:
            self._names.add(hint)
            return hint
        while True:
            name = f"{hint}_{next(self._counter)}"
            if name not in self._names:
                self._names.add(name)
                return name

    # ---- building -----------------------------------------------------------
    def add_input(self, name: str, dtype: str, shape) -> Value:
        """Declare a graph input."""
        v = Value(self.fresh_name(name), TensorType(dtype, tuple(shape)))
        self.inputs.append(v)
        return v

    def add_constant(self, array, name: str = "const") -> Value:
        """Add a constant (parameter) tensor; returns its value."""
        from .ops.tensor import Constant
        from .types import dtype_of_numpy

        array = np.asarray(array)
        key = self.fresh_name(name)
        self.constants[key] = array
        node = Node(key, Constant(key=key, dtype=dtype_of_numpy(array.dtype), shape=tuple(array.shape)), [], [])
        node.outputs = [Value(key, node.op.infer(node)[0], node)]
        self.nodes.append(node)
        return node.outputs[0]

    def add(self, op: "Op", inputs: list[Value | None], name: str | None = None, source: str | None = None) -> list[Value]:
        """Append a node applying `op`; infers and returns its output values."""
        node_name = self.fresh_name(name or op.op_name.lower())
        node = Node(node_name, op, inputs, [], source)
        types = op.infer(node)
        node.outputs = [Value(node_name if i == 0 and len(types) == 1 else self.fresh_name(f"{node_name}.{i}"), t, node)
                        for i, t in enumerate(types)]
        self.nodes.append(node)
        return node.outputs

    def add1(self, op: "Op", inputs: list[Value | None], name: str | None = None, source: str | None = None) -> Value:
        """Like `add` for single-output ops."""
        return self.add(op, inputs, name, source)[0]

    def set_outputs(self, outputs: list[Value]) -> None:
        self.outputs = list(outputs)

    # ---- queries ------------------------------------------------------------
    def to_networkx(self) -> nx.MultiDiGraph:
        """A networkx view: node names as vertices, an edge per (producer -> consumer, input slot)."""
        g = nx.MultiDiGraph()
        for n in self.nodes:
            g.add_node(n.name, node=n)
        members = {id(n) for n in self.nodes}
        for n in self.nodes:
            for slot, v in enumerate(n.inputs):
                # producers outside the graph are left for the verifier to report
                if v is not None and v.producer is not None and id(v.producer) in members:
                    g.add_edge(v.producer.name, n.name, slot=slot)
        return g

    def topological(self) -> list[Node]:
        """Nodes in a deterministic topological order (ties broken by insertion order)."""
        order = {n.name: i for i, n in enumerate(self.nodes)}
        g = self.to_networkx()
        try:
            names = list(nx.lexicographical_topological_sort(g, key=lambda name: order[name]))
        except nx.NetworkXUnfeasible as e:
            cycle = nx.find_cycle(g)
            raise IRError(f"graph has a cycle through {[a for a, *_ in cycle]}") from e
        return [g.nodes[name]["node"] for name in names]

    def users(self) -> dict[int, list[tuple[Node, int]]]:
        """Map id(value) -> [(consumer node, input slot)]."""
        out: dict[int, list[tuple[Node, int]]] = {}
        for n in self.nodes:
            for i, v in enumerate(n.inputs):
                if v is not None:
                    out.setdefault(id(v), []).append((n, i))
        return out

    def consumers(self, v: Value) -> list[Node]:
        """Nodes reading `v` (each once, in insertion order; graph outputs not included)."""
        return [n for n in self.nodes if any(x is v for x in n.inputs)]

    def attention_ops(self) -> list[Node]:
        """The Attention nodes, in topological order; each has `.spec`."""
        return [n for n in self.topological() if n.op.op_name in ("Attention", "FusedAttention")]

    def find(self, op_name: str) -> list[Node]:
        """Nodes whose op is `op_name`, in topological order."""
        return [n for n in self.topological() if n.op.op_name == op_name]

    def node_by_name(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}")

    # ---- rewriting ----------------------------------------------------------
    def replace_all_uses(self, old: Value, new: Value) -> None:
        """Point every use of `old` (including graph outputs) at `new`."""
        for n in self.nodes:
            n.inputs = [new if v is old else v for v in n.inputs]
        self.outputs = [new if v is old else v for v in self.outputs]

    def dead_code_elimination(self) -> int:
        """Remove nodes whose outputs reach no graph output; drop unused constants. Returns the count removed."""
        live = upstream_nodes(self.outputs)
        before = len(self.nodes)
        self.nodes = [n for n in self.nodes if id(n) in live]
        used = {n.op.key for n in self.nodes if n.op.op_name == "Constant"}
        self.constants = {k: a for k, a in self.constants.items() if k in used}
        return before - len(self.nodes)

    def copy(self) -> "Graph":
        """A structural copy (values and nodes are new objects, constant arrays shared)."""
        g = Graph(self.name, constants=dict(self.constants), diagnostics=[dict(d) for d in self.diagnostics],
                  metadata=dict(self.metadata))
        g._names = set(self._names)
        vmap: dict[int, Value] = {}
        for v in self.inputs:
            nv = Value(v.name, v.type)
            vmap[id(v)] = nv
            g.inputs.append(nv)
        for n in self.topological():
            nn = Node(n.name, n.op, [vmap[id(v)] if v is not None else None for v in n.inputs], [], n.source)
            for v in n.outputs:
                nv = Value(v.name, v.type, nn)
                vmap[id(v)] = nv
                nn.outputs.append(nv)
            g.nodes.append(nn)
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    def verify(self) -> None:
        """Check every structural and op rule; raises IRError naming the node and rule."""
        from .verifier import verify_graph

        verify_graph(self)

    def __str__(self) -> str:
        from .printer import print_ir

        return print_ir(self)
