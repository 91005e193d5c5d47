"""Shared pieces of attention recognition: the rejection error, the match context, op emitters."""
from __future__ import annotations

import numpy as np

from ... import dims as D
from ...graph import Graph, Node, Value
from ...interpreter import Context
from ...interpreter.kernels import KERNELS
from ...ops import Cast, Expand, Reshape, Slice, Transpose

# a fill value at or below this acts as "masked out" (HF uses finfo.min, fp16 code often -1e4)
LARGE_NEGATIVE = -1e4
_MAX_CONST_ELEMENTS = 1 << 22


class NotAttention(Exception):
    """A check failed: the softmax is left alone; the message says which check, in words."""


def need(cond: bool, reason: str) -> None:
    """Raise NotAttention(reason) unless `cond`."""
    if not cond:
        raise NotAttention(reason)


class MatchContext:
    """Per-pass state: the graph, a cache of evaluated constant subgraphs, and the use lists."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self._consts: dict[int, np.ndarray | None] = {}
        self._ctx = Context(graph.constants)
        self.refresh_users()

    def refresh_users(self) -> None:
        self.uses = self.graph.users()

    def users_of(self, v: Value) -> list[tuple[Node, int]]:
        """Consumers of `v` (graph outputs not included)."""
        return self.uses.get(id(v), [])

    def is_graph_output(self, v: Value) -> bool:
        return any(o is v for o in self.graph.outputs)

    def const(self, v: Value | None) -> np.ndarray | None:
        """The value of `v` when it is computed from Constants only (evaluated with the reference kernels)."""
        if v is None or v.producer is None:
            return None
        key = id(v)
        if key not in self._consts:
            self._consts[key] = None  # guards against re-entry
            self._consts[key] = self._evaluate(v)
        return self._consts[key]

    def _evaluate(self, v: Value) -> np.ndarray | None:
        n = v.producer
        if n.op.op_name == "Constant":
            return self.graph.constants[n.op.key]
        if n.op.op_name == "Attention" or not n.inputs or n.op.op_name not in KERNELS:
            return None
        if not all(D.is_static(o.shape) and int(np.prod(o.shape)) <= _MAX_CONST_ELEMENTS for o in n.outputs):
            return None
        args = [self.const(x) for x in n.inputs]
        if any(a is None for a in args):
            return None
        try:
            outs = KERNELS[n.op.op_name](n.op, args, n, self._ctx)
        except KeyError:  # an attribute names a symbolic dim (e.g. Slice start "past"): not a constant
            return None
        return np.asarray(outs[n.outputs.index(v)])

    def scalar(self, v: Value | None) -> float | None:
        """`v` as one float when it is a constant whose elements all hold the same number."""
        a = self.const(v)
        if a is None or a.size == 0 or a.dtype == np.bool_:
            return None
        a = np.asarray(a, np.float64)
        first = a.flat[0]
        if not (np.all(a == first) or (np.isnan(first) and np.all(np.isnan(a)))):
            return None
        return float(first)


def producer_kind(v: Value | None) -> str | None:
    """Op name of the node producing `v` (None for graph inputs)."""
    return None if v is None or v.producer is None else v.producer.op.op_name


def is_binary(v: Value | None, *fns: str) -> bool:
    return producer_kind(v) == "Binary" and v.producer.op.fn in fns


def is_unary(v: Value | None, *fns: str) -> bool:
    return producer_kind(v) == "Unary" and v.producer.op.fn in fns


def same_shape(a, b) -> bool:
    return len(a) == len(b) and all(D.equal(x, y) for x, y in zip(a, b))


class Emitter:
    """Adds the small layout ops lift-attention inserts, skipping no-ops; names say where they came from."""

    def __init__(self, graph: Graph, hint: str, source: str | None):
        self.graph, self.hint, self.source = graph, hint, source

    def reshape(self, v: Value, shape) -> Value:
        # reshape from the value under earlier reshapes / no-op expands, so chains stay short
        while producer_kind(v) in ("Reshape", "Expand") and not same_shape(v.shape, shape) and (
                producer_kind(v) == "Reshape" or same_shape(v.producer.inputs[0].shape, v.shape)):
            v = v.producer.inputs[0]
        if same_shape(v.shape, shape):
            return v
        return self.graph.add1(Reshape(tuple(shape)), [v], name=f"{self.hint}_reshape", source=self.source)

    def transpose(self, v: Value, perm) -> Value:
        if list(perm) == list(range(v.rank)):
            return v
        return self.graph.add1(Transpose(tuple(perm)), [v], name=f"{self.hint}_transpose", source=self.source)

    def expand(self, v: Value, shape) -> Value:
        if same_shape(v.shape, shape):
            return v
        return self.graph.add1(Expand(tuple(shape)), [v], name=f"{self.hint}_expand", source=self.source)

    def cast(self, v: Value, dtype: str) -> Value:
        if v.dtype == dtype:
            return v
        return self.graph.add1(Cast(dtype), [v], name=f"{self.hint}_cast", source=self.source)

    def slice(self, v: Value, axis: int, start, stop, step: int = 1) -> Value:
        return self.graph.add1(Slice(axis, start, stop, step), [v], name=f"{self.hint}_slice", source=self.source)

    def swap_last_two(self, v: Value) -> Value:
        r = v.rank
        return self.transpose(v, list(range(r - 2)) + [r - 1, r - 2])


def is_batch_view(v: Value | None) -> bool:
    """Whether `v` is a Reshape, or an Expand that changes nothing, keeping the last two axes: the
    batched-matmul views torch.export writes (expand, view to (B*H, S, D), bmm, view back)."""
    kind = producer_kind(v)
    if kind not in ("Reshape", "Expand"):
        return False
    x = v.producer.inputs[0]
    if x.rank < 2 or v.rank < 2 or not same_shape(x.shape[-2:], v.shape[-2:]):
        return False
    if kind == "Expand":
        return same_shape(x.shape, v.shape)
    return D.equal(D.product(x.shape), D.product(v.shape))
