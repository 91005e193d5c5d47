"""Values that depend on no graph input data — only on constants and symbolic dims — evaluated at
concrete sizes with the reference interpreter (e.g. a causal mask a model builds from aranges).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import dims as D
from ..errors import IRError
from ..graph import Graph, Node, Value

# a data-free mask subgraph is a few dozen ops; beyond this it is not worth evaluating
MAX_NODES = 400


def shape_only_ancestry(graph: Graph, v: Value) -> list[Node] | None:
    """The nodes computing `v`, in topological order, when no graph input is among its ancestors
    (so `v` is a function of the dim sizes alone); None otherwise."""
    inputs = {id(x) for x in graph.inputs}
    seen: set[int] = set()
    found: dict[int, Node] = {}
    stack = [v]
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if id(x) in inputs or x.producer is None:
            return None  # reads input data (or a value of unknown origin)
        node = x.producer
        if id(node) not in found:
            found[id(node)] = node
            if len(found) > MAX_NODES:
                return None
            stack.extend(node.inputs)
    return [n for n in graph.topological() if id(n) in found]


def shape_symbols(nodes: list[Node], extra=()) -> list[str]:
    """Every dim symbol in the output shapes of `nodes` and in the `extra` dims, sorted."""
    syms: set[str] = set()
    for d in [d for n in nodes for o in n.outputs for d in o.shape] + list(extra):
        if isinstance(d, str):
            syms |= D.symbols(d)
    return sorted(syms)


def evaluate_at(graph: Graph, nodes: list[Node], v: Value, dims: Mapping[str, int]) -> np.ndarray | None:
    """`v` computed by `nodes` with every symbol bound by `dims`; None when a kernel is missing or fails
    or a result's shape disagrees with its declared (symbolic) shape."""
    from ..interpreter import KERNELS, Context  # the interpreter imports the pass-free IR core only

    ctx = Context(graph.constants, dict(dims))
    env: dict[int, np.ndarray] = {}
    try:
        for node in nodes:
            fn = KERNELS.get(node.op.op_name)
            if fn is None:
                return None
            outs = fn(node.op, [None if x is None else env[id(x)] for x in node.inputs], node, ctx)
            for o, a in zip(node.outputs, outs):
                a = np.asarray(a)
                if tuple(a.shape) != tuple(D.evaluate(d, dims) for d in o.shape):
                    return None
                env[id(o)] = a
    except (IRError, KeyError, ValueError, IndexError, TypeError):
        return None
    return env.get(id(v))
