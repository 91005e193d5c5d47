"""Reference interpreter: executes any valid graph with numpy. The oracle for every backend."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import dims as D
from ..errors import IRError
from ..graph import Graph
from ..types import numpy_dtype
from .attention_ref import FEATURE_REFERENCES, attention_reference, register_reference
from .kernels import KERNELS, kernel
from . import variants  # noqa: E402,F401  (registers the attention variant references)
from . import fused_attention_ref  # noqa: E402,F401  (registers the FusedAttention kernel)
from . import scan_ref  # noqa: E402,F401  (registers the CumSum kernel)
from . import conv_ref  # noqa: E402,F401  (registers the Convolution and Pool kernels)


@dataclass
class Context:
    constants: dict
    dims: dict = field(default_factory=dict)


def bind_dims(graph: Graph, arrays: Sequence[np.ndarray]) -> dict[str, int]:
    """Solve symbolic input dims from concrete shapes (single-symbol dims bind; others are checked)."""
    env: dict[str, int] = {}
    for v, a in zip(graph.inputs, arrays):
        if len(a.shape) != v.rank:
            raise IRError(f"input '{v.name}' expects rank {v.rank} {v.type}, got shape {tuple(a.shape)}")
        for d, n in zip(v.shape, a.shape):
            if isinstance(d, str) and len(D.symbols(d)) == 1 and d == next(iter(D.symbols(d))):
                if env.setdefault(d, int(n)) != int(n):
                    raise IRError(f"input '{v.name}': dim '{d}' is {n} here but {env[d]} elsewhere")
    for v, a in zip(graph.inputs, arrays):
        for d, n in zip(v.shape, a.shape):
            try:
                want = D.evaluate(d, env)
            except KeyError:
                continue
            if want != n:
                raise IRError(f"input '{v.name}' expects {v.type}, got shape {tuple(a.shape)}")
    return env


def _empty_outputs(node, ctx) -> list[np.ndarray] | None:
    """Zero-element outputs for a node whose every output has a zero-size dim: nothing to compute (numpy's
    reductions, e.g. softmax's max over an empty axis, would raise), the result is an empty array."""
    if node.op.op_name == "Constant" or not node.outputs:
        return None
    try:
        shapes = [tuple(int(D.evaluate(d, ctx.dims)) for d in v.shape) for v in node.outputs]
    except (KeyError, ValueError, TypeError):
        return None
    if not all(0 in s for s in shapes):
        return None
    return [np.zeros(s, numpy_dtype(v.dtype)) for s, v in zip(shapes, node.outputs)]


def run_graph(graph: Graph, inputs: Sequence[np.ndarray] | dict[str, np.ndarray]) -> list[np.ndarray]:
    """Execute `graph` on numpy inputs (positional or by input name); returns the outputs.

    Collective ops over one rank are identities; over more they need all ranks: `run_ranks`."""
    steps = graph_steps(graph, inputs)
    try:
        node, args = next(steps)
        while True:
            node, args = steps.send(single_rank_collective(node, args))
    except StopIteration as done:
        return done.value


def single_rank_collective(node, args) -> list[np.ndarray]:
    """A collective over a group of one rank returns its input; anything else needs the other ranks."""
    if getattr(node.op, "ranks", None) == 1:
        return [args[0]]
    raise IRError(f"{node.op.op_name} over {getattr(node.op, 'ranks', 'peer')} ranks needs the other ranks' programs: "
                  "run the sharded program with attncc.ir.interpreter.run_ranks", node)


def graph_steps(graph: Graph, inputs: Sequence[np.ndarray] | dict[str, np.ndarray]):
    """Generator executing `graph`: yields (node, input arrays) at each collective op and expects the
    node's output arrays sent back; returns the graph outputs (StopIteration.value)."""
    if isinstance(inputs, dict):
        missing = [v.name for v in graph.inputs if v.name not in inputs]
        if missing:
            raise IRError(f"missing graph inputs {missing}; expected {[v.name for v in graph.inputs]}")
        inputs = [inputs[v.name] for v in graph.inputs]
    if len(inputs) != len(graph.inputs):
        raise IRError(f"graph '{graph.name}' takes {len(graph.inputs)} inputs "
                      f"({[v.name for v in graph.inputs]}), got {len(inputs)}")
    arrays = [np.asarray(a) for a in inputs]
    for v, a in zip(graph.inputs, arrays):
        want = numpy_dtype(v.dtype)
        if a.dtype != want:
            raise IRError(f"input '{v.name}' expects dtype {v.dtype}, got {a.dtype}")
    ctx = Context(graph.constants, bind_dims(graph, arrays))
    env = {id(v): a for v, a in zip(graph.inputs, arrays)}
    for node in graph.topological():
        args = [None if v is None else env[id(v)] for v in node.inputs]
        if getattr(node.op, "is_collective", False):
            outs = yield node, args
        else:
            fn = KERNELS.get(node.op.op_name)
            if fn is None:
                raise IRError(f"the reference interpreter has no kernel for op {node.op.op_name}", node)
            empty = _empty_outputs(node, ctx)
            outs = empty if empty is not None else fn(node.op, args, node, ctx)
        for v, a in zip(node.outputs, outs):
            env[id(v)] = np.asarray(a)
            for d, n in zip(v.shape, env[id(v)].shape):
                if isinstance(d, str) and d not in ctx.dims and len(D.symbols(d)) == 1 and d == next(iter(D.symbols(d))):
                    ctx.dims[d] = int(n)
    return [env[id(v)] for v in graph.outputs]


from .lockstep import run_ranks  # noqa: E402

__all__ = ["run_graph", "run_ranks", "graph_steps", "KERNELS", "kernel", "attention_reference", "FEATURE_REFERENCES", "register_reference"]
