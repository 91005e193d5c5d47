"""A small op builder for decompositions: every new node is named after the Attention node it replaces
and carries its `source`, so errors and dumps point back at the user's attention site."""
from __future__ import annotations

import dataclasses

import numpy as np

from ...graph import Graph, Node, Value
from ...ops import (Attention, AttentionSpec, Binary, Cast, Concat, Expand, Gather, Linear, MatMul, Reduce, Reshape, Slice,
                    Softmax, Transpose, Unary, Where)
from ...types import numpy_dtype


class Undecomposable(Exception):
    """This Attention node cannot be rewritten into plain ops; the message says why (it becomes a diagnostic)."""


class Builder:
    """Adds ops for the decomposition of one Attention `node` to `graph`."""

    def __init__(self, graph: Graph, node: Node):
        self.graph, self.node = graph, node
        self.named: dict[str, Value] = node.op.named_inputs(node)
        self.spec: AttentionSpec = node.op.spec
        self.dtype: str = self.named["query"].dtype

    # ---- generic ---------------------------------------------------------------------------
    def op(self, op, inputs: list[Value], label: str) -> Value:
        return self.graph.add1(op, inputs, name=f"{self.node.name}.{label}", source=self.node.source)

    def const(self, array, label: str, dtype: str | None = None) -> Value:
        """A constant; float arrays take the attention's dtype unless `dtype` says otherwise."""
        a = np.asarray(array)
        if dtype is not None:
            a = a.astype(numpy_dtype(dtype))
        elif a.dtype.kind == "f":
            a = a.astype(numpy_dtype(self.dtype))
        return self.graph.add_constant(a, name=f"{self.node.name}.{label}")

    def scalar(self, value: float, label: str) -> Value:
        return self.const(np.full((), value), label)

    # ---- tensor ops ------------------------------------------------------------------------
    def slice(self, x: Value, axis: int, start, stop=None, step: int = 1, label: str = "slice") -> Value:
        return self.op(Slice(axis=axis, start=start, stop=stop, step=step), [x], label)

    def reshape(self, x: Value, shape, label: str = "reshape") -> Value:
        return self.op(Reshape(tuple(shape)), [x], label)

    def transpose(self, x: Value, perm, label: str = "transpose") -> Value:
        return self.op(Transpose(tuple(perm)), [x], label)

    def concat(self, xs: list[Value], axis: int, label: str = "concat") -> Value:
        return xs[0] if len(xs) == 1 else self.op(Concat(axis=axis), xs, label)

    def expand(self, x: Value, shape, label: str = "expand") -> Value:
        return self.op(Expand(tuple(shape)), [x], label)

    def gather(self, x: Value, indices, axis: int, label: str = "gather") -> Value:
        idx = self.const(np.asarray(indices, np.int64), f"{label}_idx", dtype="int64")
        return self.op(Gather(axis=axis), [x, idx], label)

    def matmul(self, a: Value, b: Value, label: str = "matmul") -> Value:
        return self.op(MatMul(), [a, b], label)

    def linear(self, x: Value, w: Value, label: str = "linear") -> Value:
        return self.op(Linear(), [x, w], label)

    def binary(self, fn: str, a: Value, b: Value, label: str | None = None) -> Value:
        return self.op(Binary(fn), [a, b], label or fn)

    def unary(self, fn: str, x: Value, label: str | None = None) -> Value:
        return self.op(Unary(fn), [x], label or fn)

    def where(self, c: Value, a: Value, b: Value, label: str = "where") -> Value:
        return self.op(Where(), [c, a, b], label)

    def reduce(self, fn: str, x: Value, axes, keepdims: bool = False, label: str | None = None) -> Value:
        return self.op(Reduce(fn=fn, axes=tuple(axes), keepdims=keepdims), [x], label or f"reduce_{fn}")

    def softmax(self, x: Value, axis: int = -1, label: str = "softmax") -> Value:
        return self.op(Softmax(axis=axis), [x], label)

    def cast(self, x: Value, dtype: str, label: str = "cast") -> Value:
        return self.op(Cast(dtype), [x], label)

    def scale(self, x: Value, factor: float, label: str = "scale") -> Value:
        return self.binary("mul", x, self.scalar(factor, f"{label}_factor"), label)

    # ---- attention pieces --------------------------------------------------------------------
    def plain_spec(self, **changes) -> AttentionSpec:
        """The node's spec without variant features, with `changes` applied."""
        return self.spec.replace(kv_source=None, head_mixing=None, score_mods=(), **changes)

    def attention(self, spec: AttentionSpec, q: Value, k: Value, v: Value, mask: Value | None = None,
                  label: str = "attention", kernel: str | None = None) -> Value:
        """A plain (feature-free) Attention; `mask` is the bool keep-mask when spec.mask.input == 'bool'.
        `kernel` tags it with a kernel hint the backends read (graph.metadata["kernel_hints"][node]; KERNEL_HINTS),
        so no backend re-discovers what the decomposition knew from shapes."""
        if spec.features_list():
            raise ValueError("internal: a decomposition must emit feature-free Attention ops")
        if kernel is not None and kernel not in KERNEL_HINTS:
            raise ValueError(f"internal: unknown kernel hint {kernel!r}; hints: {', '.join(KERNEL_HINTS)}")
        inputs = [q, k, v] + ([mask] if spec.mask.input != "none" else [])
        out = self.op(Attention(spec=spec), inputs, label)
        if kernel is not None:
            self.graph.metadata.setdefault("kernel_hints", {})[out.producer.name] = kernel
        return out

    def repeat_heads(self, x: Value, group: int, label: str = "repeat") -> Value:
        """(B, Hkv, S, D) -> (B, Hkv*group, S, D) with head h reading kv head h // group (GQA order)."""
        if group == 1:
            return x
        B, H, S, Dd = x.shape
        r = self.reshape(x, (B, H, 1, S, Dd), f"{label}_r")
        e = self.expand(r, (B, H, group, S, Dd), f"{label}_e")
        return self.reshape(e, (B, H * group, S, Dd), f"{label}_m")

    def per_head_matmul(self, x: Value, w: Value, label: str) -> Value:
        """(B, H, S, K) @ w (H, K, N) per head -> (B, H, S, N), laid out so the CPU matmul sees a regular batch."""
        B, H, S, K = x.shape
        N = w.shape[-1]
        if B == 1:
            return self.matmul(x, w, label)
        xt = self.reshape(self.transpose(x, (1, 0, 2, 3), f"{label}_hb"), (H, -1, K), f"{label}_rows")
        y = self.matmul(xt, w, label)
        return self.transpose(self.reshape(y, (H, B, S, N), f"{label}_unrows"), (1, 0, 2, 3), f"{label}_bh")


# kernel hints a decomposition may put on the attention it emits (graph.metadata["kernel_hints"]):
#   "v-from-k": V is the first v_head_dim columns of K (absorbed MLA: V = c_kv, K = [c_kv | k_pe]), so a kernel
#               may read V from the K tile it already staged
KERNEL_HINTS = ("v-from-k",)


def static(d, what: str) -> int:
    """A dim a decomposition needs as a concrete int (constants and window reshapes are built from it)."""
    if not isinstance(d, int):
        raise Undecomposable(f"{what} is symbolic ({d!r}); this decomposition needs static shapes")
    return d


def with_mask(spec: AttentionSpec, **changes) -> AttentionSpec:
    """`spec` with mask fields changed."""
    return spec.replace(mask=dataclasses.replace(spec.mask, **changes))
