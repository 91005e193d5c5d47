"""lift-rotary: rewrite RoPE spelled out in primitive ops on an Attention op's query and key into Rotary ops.

Models write RoPE as `q * cos + rotate_half(q) * sin` (or the interleaved GPT-J form, or on the first
rotary_dim channels only) before calling SDPA; lift-attention folds it for attention it lifts itself,
but an Attention op that came from SDPA still reads the rotated tensors. This pass matches the same
spellings (recognize/rope.py) on query and new key (the key after fold-kv-cache split off the past)
and replaces each by Rotary(x, cos, sin), which fuse-attention absorbs into `spec.rope`. RoPE applied
to (B, S, H, D) tensors before transpose(1, 2) (GPT-J) becomes Rotary(transpose(x)), whose
transpose fuse-attention then folds into the op's layout.
The tables must hold each frequency twice (checked on constants, structurally for tables computed
from inv_freq in the graph) and are turned into the (B|1, S, rotary_dim/2) half tables Rotary reads:
a half constant when they are constant (sliced to the sequence when its length is symbolic), else
Reshape/Slice ops on the computed table.
Every rewritten value is replaced for all its readers, so results match exactly (the interpreter's
Rotary computes the same products and sums). Sites whose q/k look rotated but do not qualify are
recorded in graph.diagnostics as {"kind": "rope-not-lifted", "node", "reason"}.
Requires: fold-kv-cache (for ops with a cache). Guarantees: same outputs; a query/key of a bhsd
Attention op without spec.rope is not a spelled-out RoPE this pass recognizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..graph import Graph, Node, Value
from ..ops import Rotary
from ._rewrite import SWAP_SEQ_HEADS, is_swap_transpose
from .base import Pass, register_pass
from .recognize.common import Emitter, MatchContext
from .recognize.rope import fold_rope, match_rope


def _under_transpose(v: Value) -> Value:
    return v.producer.inputs[0] if is_swap_transpose(v) else v


def lift_node(graph: Graph, node: Node) -> bool:
    """Replace the spelled-out RoPE on `node`'s query and key by Rotary ops; whether it did."""
    spec = node.spec
    if spec.rope is not None or spec.features_list() or spec.layout != "bhsd":
        return False
    named = node.op.named_inputs(node)
    q, k = named["query"], named["key"]
    ctx = MatchContext(graph)
    em = Emitter(graph, f"{node.name}_rope", node.source)
    mark = len(graph.nodes)
    got = fold_rope(ctx, em, q, k)
    if got is None and is_swap_transpose(q) and is_swap_transpose(k):
        # RoPE on (B, S, H, D) before transpose(1, 2) (GPT-J): rotate the transposed tensor instead
        got = fold_rope(ctx, em, q.producer.inputs[0], k.producer.inputs[0], seq_axis=1)
        if got is not None:
            got = (em.transpose(got[0], SWAP_SEQ_HEADS), em.transpose(got[1], SWAP_SEQ_HEADS)) + got[2:]
    if got is None:
        del graph.nodes[mark:]  # half-table ops emitted for a failed match
        if any(match_rope(x) is not None for x in (q, k, _under_transpose(q), _under_transpose(k))):
            graph.diagnostics.append({"kind": "rope-not-lifted", "node": node.name, "reason": "query and key "
                                      "are not rotated alike by duplicated cos/sin tables of the sequence"})
        return False
    xq, xk, cos, sin, rope = got
    op = Rotary(rope.style, rope.rotary_dim)
    rq = graph.add1(op, [xq, cos, sin], name=f"{q.name}_rotary", source=node.source)
    rk = graph.add1(op, [xk, cos, sin], name=f"{k.name}_rotary", source=node.source)
    graph.replace_all_uses(q, rq)
    graph.replace_all_uses(k, rk)
    return True


@register_pass
@dataclass(frozen=True)
class LiftRotary(Pass):
    """Rewrite spelled-out RoPE on attention query/key (rotate-half, interleaved, partial) into Rotary ops."""

    name: ClassVar[str] = "lift-rotary"

    def run(self, graph: Graph) -> Graph:
        for node in graph.find("Attention"):
            lift_node(graph, node)
        graph.dead_code_elimination()
        return graph
