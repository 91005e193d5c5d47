"""fold-repeat-kv: turn materialized K/V head repetition into the op's GQA/MQA kv-head mapping.

Matched spellings of repeat_kv on the key and value operands (head axis per spec.layout):
- HF `repeat_kv`: Reshape (insert a 1 after the head axis) -> Expand (1 -> g) -> Reshape (merge
  kv heads and g), which makes query head h read kv head h // g — exactly Attention's mapping.
- MQA broadcast: Expand of a single kv head to all query heads.
Key and value must repeat by the same factor. Ops with a KV cache are left alone (the present
outputs would change shape) and recorded in graph.diagnostics.
Requires: canonicalize-attention (so the op's layout is final). Guarantees: same outputs; the
repeated copies no longer feed Attention (dead ones are removed), `spec.num_kv_heads` is the real count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..graph import Graph, Node, Value
from ..ops import Reshape
from ._rewrite import producer_op, replace_node, with_spec
from .base import Pass, register_pass


def _same(a, b) -> bool:
    return len(a) == len(b) and all(D.equal(x, y) for x, y in zip(a, b))


def match_repeat(v: Value, head_axis: int) -> tuple[Value, int] | None:
    """(unrepeated value, group factor g) when `v` is a repeat_kv of a rank-4 value, else None."""
    r2 = producer_op(v, "Reshape")
    exp = producer_op(r2.inputs[0], "Expand") if r2 else None
    r1 = producer_op(exp.inputs[0], "Reshape") if exp else None
    if r1 is not None:
        x = r1.inputs[0]
        xs, es = tuple(x.shape), tuple(exp.outputs[0].shape)
        g = es[head_axis + 1] if len(es) == 5 else None
        if x.rank == 4 and isinstance(g, int) and g > 1 \
                and _same(r1.outputs[0].shape, xs[:head_axis + 1] + (1,) + xs[head_axis + 1:]) \
                and _same(es, xs[:head_axis + 1] + (g,) + xs[head_axis + 1:]) \
                and _same(v.shape, xs[:head_axis] + (D.mul(xs[head_axis], g),) + xs[head_axis + 1:]):
            return x, g
    if exp is not None and r1 is None:
        # Falcon's new decoder architecture: the 5-D (.., kv heads, 1, ..) source is a slice of the fused qkv
        # (qkv[:, :, :, [-2]]), not a Reshape of a 4-D value; the caller drops the 1 with a Reshape
        x5, es = exp.inputs[0], tuple(exp.outputs[0].shape)
        xs = tuple(x5.shape)
        g = es[head_axis + 1] if len(es) == 5 else None
        if x5.rank == 5 and xs[head_axis + 1] == 1 and isinstance(g, int) and g > 1 \
                and _same(es, xs[:head_axis + 1] + (g,) + xs[head_axis + 2:]) \
                and _same(v.shape, xs[:head_axis] + (D.mul(xs[head_axis], g),) + xs[head_axis + 2:]):
            return x5, g
    exp = producer_op(v, "Expand")
    if exp is not None:
        x = exp.inputs[0]
        xs, vs = tuple(x.shape), tuple(v.shape)
        g = vs[head_axis]
        if x.rank == 4 and xs[head_axis] == 1 and isinstance(g, int) and g > 1 \
                and _same(xs[:head_axis] + xs[head_axis + 1:], vs[:head_axis] + vs[head_axis + 1:]):
            return x, g
    return None


def _drop_group_axis(graph: Graph, x: Value, head_axis: int, node: Node) -> Value:
    """x itself when 4-D; a 5-D (.., kv heads, 1, ..) source reshaped to 4-D without its unit group axis."""
    if x.rank == 4:
        return x
    shape = tuple(x.shape[:head_axis + 1]) + tuple(x.shape[head_axis + 2:])
    return graph.add1(Reshape(shape), [x], name=f"{node.name}_kv_heads", source=node.source)


def fold_node(graph: Graph, node: Node) -> Node | None:
    """Fold one level of repeat_kv on key and value; the new node, or None when nothing matched."""
    spec = node.spec
    head_axis = 1 if spec.layout == "bhsd" else 2
    named = node.op.named_inputs(node)
    mk, mv = match_repeat(named["key"], head_axis), match_repeat(named["value"], head_axis)
    if mk is None or mv is None or mk[1] != mv[1] or spec.num_kv_heads % mk[1]:
        return None
    if spec.kv_cache:
        graph.diagnostics.append({"pass": "fold-repeat-kv", "node": node.name,
                                  "reason": "repeat_kv feeds an op with a KV cache; present outputs would change"})
        return None
    g = mk[1]
    swap = {id(named[k]): _drop_group_axis(graph, m[0], head_axis, node) for k, m in (("key", mk), ("value", mv))}
    inputs = [swap.get(id(v), v) for v in node.inputs]
    return replace_node(graph, node, with_spec(node, num_kv_heads=spec.num_kv_heads // g), inputs)[0].producer


@register_pass
@dataclass(frozen=True)
class FoldRepeatKV(Pass):
    """Fold expand/reshape repeat_kv chains into Attention.spec.num_kv_heads."""

    name: ClassVar[str] = "fold-repeat-kv"

    def run(self, graph: Graph) -> Graph:
        for node in graph.find("Attention"):
            if node.spec.features_list():
                continue
            while node is not None:
                node = fold_node(graph, node)
        graph.dead_code_elimination()
        return graph
