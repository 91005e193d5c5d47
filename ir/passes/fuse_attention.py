"""fuse-attention: make each attention site one kernel op.

The Attention op already means the whole QKᵀ -> scale -> softcap -> mask/bias -> online softmax
-> PV pipeline (backends emit it as one flash kernel). This pass absorbs what surrounds it:
- prologue: Rotary ops applying the same cos/sin to the query and the new key, when their
  results feed only this op, become `spec.rope` (the kernel rotates tiles as it loads them);
  needs the op in "bhsd" layout, which is the Rotary op's layout.
- epilogue (option `epilogue`): merge heads -> Linear output projection (+ bias) and, with
  "residual", the following residual add become one FusedAttention op (ir/ops/fused_attention.py).
  Off by default: it pays where writing the (B, S, H*Dv) attention output to memory and a
  launch are a real share of the layer (GPU decode) and a backend lowers FusedAttention; such
  targets opt in through their pipeline, e.g. `fuse-attention{epilogue=residual}`.
Requires: canonicalize-attention, fold-repeat-kv. Guarantees: same outputs (rtol 1e-5 fp32:
the epilogue is evaluated without the intermediate rounding); no Rotary feeds only Attention.
After absorbing RoPE the layout transposes it hid are folded (canonicalize-attention's rule).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..graph import Graph, Node, Value, upstream_nodes
from ..ops import FusedAttention, RopeSpec
from ._rewrite import SWAP_SEQ_HEADS, constant_array, producer_op, release, replace_node, use_count, with_spec
from .base import Pass, PipelineError, register_pass
from .canonicalize_attention import fold_layout

EPILOGUES = ("none", "projection", "residual")


def absorb_rope(graph: Graph, node: Node) -> Node:
    """Move Rotary ops on query and key into spec.rope."""
    spec = node.spec
    if spec.rope is not None or spec.layout != "bhsd":
        return node
    named = node.op.named_inputs(node)
    rq, rk = producer_op(named["query"], "Rotary"), producer_op(named["key"], "Rotary")
    if rq is None or rk is None or rq.op != rk.op:
        return node
    if rq.inputs[1] is not rk.inputs[1] or rq.inputs[2] is not rk.inputs[2]:
        return node  # different position tables: not one rope
    if use_count(graph, named["query"]) != 1 or use_count(graph, named["key"]) != 1:
        return node  # a rotated tensor is needed elsewhere; keep it materialized
    new_spec = spec.replace(rope=RopeSpec(rq.op.style, rq.op.rotary_dim))
    named = dict(named, query=rq.inputs[0], key=rk.inputs[0], rope_cos=rq.inputs[1], rope_sin=rq.inputs[2])
    inputs = [named[name] for name in new_spec.input_names()]
    return replace_node(graph, node, with_spec(node, rope=new_spec.rope), inputs)[0].producer


def _single_user(graph: Graph, v: Value) -> Node | None:
    users = graph.consumers(v)
    if len(users) != 1 or any(o is v for o in graph.outputs) or sum(x is v for x in users[0].inputs) != 1:
        return None
    return users[0]


def fuse_epilogue(graph: Graph, node: Node, with_residual: bool) -> Node:
    """Fold merge-heads -> Linear (-> + residual) after `node` into a FusedAttention."""
    spec = node.spec
    out = node.outputs[0]
    cur = out
    if spec.layout == "bhsd":
        t = _single_user(graph, cur)
        if t is None or t.op.op_name != "Transpose" or tuple(t.op.perm) != SWAP_SEQ_HEADS:
            return node
        cur = t.outputs[0]
    r = _single_user(graph, cur)
    B, S = cur.shape[0], cur.shape[1]
    if r is None or r.op.op_name != "Reshape" or r.outputs[0].rank != 3 \
            or not all(D.equal(a, b) for a, b in zip(r.outputs[0].shape, (B, S, spec.num_heads * spec.v_head_dim))):
        return node
    lin = _single_user(graph, r.outputs[0])
    if lin is None or lin.op.op_name != "Linear" or lin.inputs[0] is not r.outputs[0] or constant_array(graph, lin.inputs[1]) is None:
        return node
    extra = list(lin.inputs[1:])
    last, residual = lin, None
    if with_residual:
        add = _single_user(graph, lin.outputs[0])
        if add is not None and add.op.op_name == "Binary" and add.op.fn == "add":
            other = add.inputs[1] if add.inputs[0] is lin.outputs[0] else add.inputs[0]
            if other.type == lin.outputs[0].type and id(node) not in upstream_nodes([other]):
                last, residual = add, other
    release(graph, node)
    op = FusedAttention(spec=spec, tiling=node.op.tiling, has_out_bias=lin.op.has_bias, has_residual=residual is not None)
    new = graph.add(op, list(node.inputs) + extra + ([residual] if residual is not None else []),
                    name=node.name, source=node.source)
    graph.replace_all_uses(last.outputs[0], new[0])
    for old, nv in zip(node.outputs[1:], new[1:]):
        graph.replace_all_uses(old, nv)
    return new[0].producer


@register_pass
@dataclass(frozen=True)
class FuseAttention(Pass):
    """Absorb RoPE into the attention kernel's prologue; optionally the output projection as an epilogue."""

    name: ClassVar[str] = "fuse-attention"
    epilogue: str = "none"
    fold_layout: bool = True

    def run(self, graph: Graph) -> Graph:
        if self.epilogue not in EPILOGUES:
            raise PipelineError(f"pass '{self.name}': option 'epilogue' must be one of {EPILOGUES}, got {self.epilogue!r}")
        for node in graph.find("Attention"):
            if node.spec.features_list():
                continue
            node = absorb_rope(graph, node)
            if self.fold_layout:  # absorbing RoPE can expose the layout transposes
                node = fold_layout(graph, node)
            if self.epilogue != "none":
                fuse_epilogue(graph, node, with_residual=self.epilogue == "residual")
        graph.dead_code_elimination()
        return graph
