"""fuse-qkv: pack the Q, K and V projections that read the same tensor into one Linear.

For every Attention (or FusedAttention) op, each of query/key/value is traced back through
layout and per-head ops (Reshape, Transpose, Expand, Rotary, scalar Binary) to the projection
that made it: a Linear, or a MatMul by a rank-2 constant. Projections with constant weights
that share their input are replaced by one Linear whose weight is the column-wise
concatenation (weights are (in, out)) followed by one Slice per original output. Self-attention
packs Q, K and V; cross-attention packs K and V (they read the encoder output, Q does not).
When only some projections have a bias the others get a zero bias, so the packed op has one.
Requires: nothing (best after fold-repeat-kv). Guarantees: same outputs; at most one
projection per distinct input feeds each attention op's q/k/v.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..graph import Graph, Node, Value
from ..ops import Linear, Slice
from ._rewrite import constant_array, release
from .base import Pass, register_pass

# ops a projection's output may pass through on its way to the attention op (input slot followed)
PASS_THROUGH = {"Reshape": 0, "Transpose": 0, "Expand": 0, "Rotary": 0, "Cast": 0}
ATTENTION_OPS = ("Attention", "FusedAttention")


def _projection(graph: Graph, v: Value) -> Node | None:
    """The Linear / constant-weight MatMul that produced `v` (through PASS_THROUGH ops), else None."""
    seen = 0
    while v is not None and v.producer is not None and seen < 16:
        p = v.producer
        kind = p.op.op_name
        if kind == "Linear" and constant_array(graph, p.inputs[1]) is not None \
                and (not p.op.has_bias or constant_array(graph, p.inputs[2]) is not None):
            return p
        if kind == "MatMul" and p.inputs[1].rank == 2 and constant_array(graph, p.inputs[1]) is not None:
            return p
        if kind == "Binary" and p.op.fn in ("mul", "div", "add", "sub"):
            consts = [constant_array(graph, x) is not None for x in p.inputs]
            if consts.count(True) != 1:
                return None
            v = p.inputs[consts.index(False)]
        elif kind in PASS_THROUGH:
            v = p.inputs[PASS_THROUGH[kind]]
        else:
            return None
        seen += 1
    return None


def projection_groups(graph: Graph) -> list[list[Node]]:
    """Groups (>= 2) of distinct projections feeding attention q/k/v that share one input tensor."""
    groups: dict[int, list[Node]] = {}
    for att in graph.nodes:
        if att.op.op_name not in ATTENTION_OPS:
            continue
        named = dict(zip(att.op.spec.input_names(), att.inputs))
        for slot in ("query", "key", "value"):
            p = _projection(graph, named[slot])
            if p is None:
                continue
            group = groups.setdefault(id(p.inputs[0]), [])
            if all(q is not p for q in group):
                group.append(p)
    return [g for g in groups.values() if len(g) >= 2]


def _weight_bias(graph: Graph, p: Node) -> tuple[np.ndarray, np.ndarray | None]:
    w = constant_array(graph, p.inputs[1])
    b = constant_array(graph, p.inputs[2]) if p.op.op_name == "Linear" and p.op.has_bias else None
    return w, b


def pack(graph: Graph, group: list[Node]) -> Value:
    """Replace `group` by one packed Linear plus Slices; returns the packed output."""
    parts = [_weight_bias(graph, p) for p in group]
    x = group[0].inputs[0]
    weight = np.concatenate([w for w, _ in parts], axis=1)
    has_bias = any(b is not None for _, b in parts)
    inputs = [x, graph.add_constant(weight, name="qkv_weight")]
    if has_bias:
        bias = np.concatenate([b if b is not None else np.zeros(w.shape[1], w.dtype) for w, b in parts])
        inputs.append(graph.add_constant(bias, name="qkv_bias"))
    src = ",".join(p.source for p in group if p.source) or None
    packed = graph.add1(Linear(has_bias=has_bias), inputs, name="qkv", source=src)
    start = 0
    for p, (w, _) in zip(group, parts):
        stop = start + w.shape[1]
        release(graph, p)  # the slice takes the projection's name: q_proj stays q_proj
        piece = graph.add1(Slice(axis=-1, start=start, stop=stop), [packed], name=p.name, source=p.source)
        graph.replace_all_uses(p.outputs[0], piece)
        start = stop
    return packed


@register_pass
@dataclass(frozen=True)
class FuseQKV(Pass):
    """Pack same-input Q/K/V projections into one Linear + Slices."""

    name: ClassVar[str] = "fuse-qkv"

    def run(self, graph: Graph) -> Graph:
        for group in projection_groups(graph):
            dtypes = {constant_array(graph, p.inputs[1]).dtype for p in group}
            rows = {p.inputs[1].shape[0] for p in group}
            if len(dtypes) == 1 and len(rows) == 1:
                pack(graph, group)
        graph.dead_code_elimination()
        return graph
