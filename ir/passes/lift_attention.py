"""lift-attention: recognize attention spelled out in primitive ops and lift it into one Attention op.

Anchor: a Softmax over the last axis. Backwards: the score chain (scale, softcap, masks, casts —
see recognize/scores.py) down to scores = MatMul(q, kᵀ), where kᵀ must be a Transpose that puts K's
last (head-dim) axis in the contraction slot; scales on q / k are folded too. Forwards: probs (through
casts) must feed only out = MatMul(probs, v). Then the batch axes are mapped to (batch, heads)
(recognize/axis_map.py), and on 4-D K/V: repeat_kv -> num_kv_heads, Concat(past, new) -> kv_cache,
RoPE on q and new k -> spec.rope. A fully-masked-row guard
Where(Equal(ReduceMax(bias), -inf), 0, probs) on the probabilities is absorbed when it tests the bias added
to the scores, and so is Where(IsNaN(probs), 0, probs) (recognize/row_guard.py). Every failed check leaves
the softmax alone and records
{"kind": "attention-not-lifted", "node", "source", "reason"} in graph.diagnostics; every lift records
{"kind": "attention-lifted", "node", "spec"}; an entry of the same kind for the same node is not repeated.
Last, lift-position-bias turns constant ALiBi / T5 / Swin additive masks into spec fields.
Requires: nothing (constant-fold/canonicalize first help). Guarantees: same outputs; every lifted site
is one Attention node whose inputs are bhsd (Reshape/Transpose ops inserted where the graph used
another arrangement; `canonicalize` folds them).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import networkx as nx
import numpy as np

from .. import dims as D
from ..errors import IRError
from ..graph import Graph, Node, Value
from ..ops import Attention, AttentionSpec, MaskSpec, SpecError, Unary
from ..ops.attention_features.gated_positional import GatedPositional
from ..ops.attention_features.talking_heads import TalkingHeads
from .base import Pass, register_pass
from .lift_position_bias import LiftPositionBias
from .recognize.axis_map import plan_batch
from .recognize.common import Emitter, MatchContext, NotAttention, is_batch_view, need, producer_kind, same_shape
from .recognize.kv_cache import split_cache
from .recognize.repeat_kv import unrepeat
from .recognize.rope import fold_rope
from .recognize.row_guard import check_row_guard, nan_guard
from .recognize.scale import peel_scale
from .recognize.scores import ScoreChain, walk_scores
from .recognize.factorized import lift_factorized
from .recognize.gated_positional import gated_blend
from .recognize.talking_heads import mix_after


@dataclass
class Site:
    """One matched attention site, in graph values."""

    softmax: Node
    chain: ScoreChain
    q: Value  # β + (Sq, D), scale removed
    k: Value  # β_k + (Skv, D): K itself (the Transpose undone), scale removed
    v: Value  # β_k + (Skv, Dv)
    out: Value  # β_m + (Sq, Dv): the value the Attention op replaces
    scale: float
    scores: Value  # β + (Sq, Skv): the scores as the softmax sees them


def _through_casts(v: Value) -> Value:
    while producer_kind(v) == "Cast" and v.producer.inputs[0].dtype.startswith(("float", "bfloat")):
        v = v.producer.inputs[0]
    return v


def _untranspose(em: Emitter, kt: Value) -> Value:
    """K from kᵀ: kᵀ must be Transpose(x, perm) with x's last axis (head dim) moved to the contraction slot
    (possibly under batch-axis views, which commute with swapping the last two axes)."""
    base = _through_casts(kt)
    if is_batch_view(base):
        inner = _untranspose(em, base.producer.inputs[0])
        k = em.reshape(inner, tuple(base.shape[:-2]) + (base.shape[-1], base.shape[-2]))
        return em.cast(k, kt.dtype)
    need(producer_kind(base) == "Transpose",
         f"the key operand '{kt.name}' of q·kᵀ is not a transpose of K (it is made by {producer_kind(base) or 'a graph input'})")
    x, perm = base.producer.inputs[0], list(base.producer.op.perm)
    r = x.rank
    need(perm[-2] == r - 1, f"the key is permuted with {tuple(perm)}, which does not swap K's last two axes: "
         f"the contraction axis is K axis {perm[-2]}, not its head-dim axis {r - 1}")
    k = em.transpose(x, perm[:-2] + [perm[-1], perm[-2]])
    return em.cast(k, kt.dtype)


def _probs_to_pv(ctx: MatchContext, sm: Node, chain: ScoreChain) -> Node:
    """The MatMul(probs, v) the softmax output feeds (through float casts / identity / the fully-masked-row
    guard, see recognize/row_guard.py), used nowhere else."""
    v = sm.outputs[0]
    for _ in range(8):
        blend = gated_blend(ctx, v) if v is sm.outputs[0] else None
        if blend is not None:
            chain.gated = blend[1:]
            v = blend[0]
            continue
        mix = mix_after(ctx, v)
        if mix is not None:
            need(chain.post_mix is None, "two talking-heads mixes of the probabilities")
            chain.post_mix = (mix[1], mix[2])
            v = mix[0]
            continue
        guard = nan_guard(ctx, v)
        if guard is not None:
            v = guard.outputs[0]
            continue
        uses = ctx.users_of(v)
        need(not ctx.is_graph_output(v), f"the attention probabilities '{v.name}' are also a graph output "
             "(e.g. ONNX Attention's qk_matmul_output_mode 3), which the Attention op does not return")
        need(len(uses) == 1, f"the attention probabilities '{v.name}' are also used elsewhere ({len(uses)} readers)")
        user, slot = uses[0]
        if user.op.op_name == "MatMul":
            need(slot == 0, f"the probabilities are the right operand of MatMul '{user.name}', not probs @ V")
            return user
        if user.op.op_name == "Where":
            check_row_guard(ctx, user, slot, v, chain.biases, chain.biases_before_softcap)
            v = user.outputs[0]
            continue
        need(user.op.op_name == "Cast" or (user.op.op_name == "Unary" and user.op.fn == "identity")
             or is_batch_view(user.outputs[0]),
             f"the probabilities feed {user.op.op_name} '{user.name}', not a MatMul with V")
        v = user.outputs[0]
    need(False, "no MatMul with V after the softmax")
    raise AssertionError


def match_site(ctx: MatchContext, em: Emitter, sm: Node) -> Site:
    """Match one softmax; raises NotAttention naming the failed check."""
    x = sm.inputs[0]
    need(x.rank >= 2 and sm.op.axis % x.rank == x.rank - 1, f"softmax over axis {sm.op.axis} of a rank-{x.rank} tensor, not the last axis")
    chain = walk_scores(ctx, x, em)
    pv = _probs_to_pv(ctx, sm, chain)
    q_side, kt = chain.matmul.inputs
    q, fq = peel_scale(ctx, q_side, em)
    kt, fkt = peel_scale(ctx, kt)
    k = _untranspose(em, kt)
    k, fk = peel_scale(ctx, k, em)
    scale = chain.scale * fq * fkt * fk
    need(math.isfinite(scale) and scale > 0, f"the combined scale {scale} is not a positive number")
    v = pv.inputs[1]
    scores = chain.matmul.outputs[0]
    if not same_shape(scores.shape, x.shape):
        # torch.export's bmm form: q/k/v merged to (B*H, S, D) around the MatMuls, scores viewed back
        beta_m, beta_s = tuple(scores.shape[:-2]), tuple(x.shape[:-2])
        for name, t in (("query", q), ("key", k), ("value", v)):
            need(same_shape(t.shape[:-2], beta_m), f"{name} batch axes {t.shape[:-2]} are broadcast in the batched MatMul {beta_m}")
        q, k, v = (em.reshape(t, beta_s + tuple(t.shape[-2:])) for t in (q, k, v))
        need(same_shape(pv.outputs[0].shape[:-2], beta_m), "the probs·V MatMul batches differently from q·kᵀ")
    return Site(sm, chain, q, k, v, pv.outputs[0], scale, x)


def build(ctx: MatchContext, em: Emitter, site: Site) -> tuple[Node, list[tuple[Value, Value]]]:
    """Insert the Attention node for `site`; returns it and (old value, new value) pairs to rewire."""
    chain, scores = site.chain, site.scores
    plan = plan_batch(scores, site.q, site.k, site.v)
    kvh = plan.kv_heads(tuple(site.k.shape[:len(plan.beta)]))
    dtype = site.out.dtype
    q = em.cast(plan.to_bhsd(em, site.q), dtype)
    k = em.cast(plan.expand_batch(em, plan.to_bhsd(em, site.k)), dtype)
    v = em.cast(plan.expand_batch(em, plan.to_bhsd(em, site.v)), dtype)
    head_dim, v_dim = q.shape[3], v.shape[3]
    need(isinstance(head_dim, int) and isinstance(v_dim, int), f"head dims {head_dim}/{v_dim} are not numbers")
    rewire: list[tuple[Value, Value]] = []
    # repeat_kv: K and V must repeat with the same group for the fold
    rk, rv = unrepeat(ctx, em, k), unrepeat(ctx, em, v)
    if rk is not None and rv is not None and rk[1] == rv[1] and D.equal(rk[0].shape[1], rv[0].shape[1]):
        k, v = rk[0], rv[0]
        kvh = k.shape[1]
    past = None
    ck, cv = split_cache(k), split_cache(v)
    if ck is not None and cv is not None and D.equal(ck[0].shape[2], cv[0].shape[2]):
        past = (ck[0], cv[0])
        rewire += [(k, None), (v, None)]  # filled with present outputs below
        k, v = ck[1], cv[1]
    rope = fold_rope(ctx, em, q, k)
    extra_rope = []
    if rope is not None:
        q, k, cos, sin, rope_spec = rope
        extra_rope = [cos, sin]
    mask = chain.position
    inputs = [q, k, v]
    if chain.mask_input is not None:
        m = chain.mask_input
        if chain.mask_inverted:
            m = em.graph.add1(Unary("not"), [m], name=f"{em.hint}_keep", source=em.source)
        inputs.append(plan.to_bhsd(em, m, heads=plan.heads))
        mask = MaskSpec(**{**mask.__dict__, "input": chain.mask_kind})
    if past is not None:
        inputs += [past[0], past[1]]
    inputs += extra_rope
    talking = None
    if chain.head_mix is not None or chain.post_mix is not None:
        talking = TalkingHeads(pre=chain.head_mix is not None, post=chain.post_mix is not None)
        for w, b in (m for m in (chain.head_mix, chain.post_mix) if m is not None):
            need(w.shape[0] == plan.heads, f"the talking-heads mix is over {w.shape[0]} heads, the site has {plan.heads}")
            inputs += [em.cast(w, dtype), em.cast(b if b is not None else em.graph.add_constant(
                np.zeros(plan.heads, np.float32), name=f"{em.hint}_talk_zero_bias"), dtype)]
    mods = ()
    if chain.gated is not None:
        gate, pos, renorm = chain.gated
        need(talking is None, "talking-heads mixes and a gated positional blend on one site")
        need(pos.shape[1] == plan.heads, f"the positional map has {pos.shape[1]} heads, the site has {plan.heads}")
        mods = (GatedPositional(renormalize=renorm),)
        inputs += [em.cast(em.graph.add_constant(gate, name=f"{em.hint}_content_gate"), dtype),
                   em.cast(em.graph.add_constant(pos, name=f"{em.hint}_pos_attention"), dtype)]
    try:
        spec = AttentionSpec(num_heads=plan.heads, num_kv_heads=int(kvh), head_dim=head_dim, v_head_dim=v_dim,
                             scale=site.scale, softcap=chain.softcap, softcap_order=chain.softcap_order, mask=mask,
                             rope=None if rope is None else rope[4], kv_cache=past is not None, head_mixing=talking,
                             score_mods=mods)
    except SpecError as e:
        raise NotAttention(f"the matched pieces do not form a valid attention spec: {e}") from e
    outs = em.graph.add(Attention(spec=spec), inputs, name=f"{em.hint}_attention", source=site.softmax.source)
    node = outs[0].producer
    out = em.reshape(outs[0], site.out.shape)
    rewire.insert(0, (site.out, out))
    if past is not None:
        rewire[1] = (rewire[1][0], outs[1])
        rewire[2] = (rewire[2][0], outs[2])
    return node, rewire


def _apply(graph: Graph, node: Node, rewire: list[tuple[Value, Value]]) -> None:
    """Point readers of the replaced values at the Attention outputs (never a reader the Attention needs)."""
    g = graph.to_networkx()
    upstream = nx.ancestors(g, node.name) | {node.name}
    for old, new in rewire:
        for n in graph.nodes:
            if n.name not in upstream and n is not new.producer:
                n.inputs = [new if x is old else x for x in n.inputs]
        graph.outputs = [new if x is old else x for x in graph.outputs]


def _note(graph: Graph, entry: dict) -> None:
    """Record a diagnostic unless one of the same kind for the same node is there already: frontends run
    this pass at import and the default pipelines run it again."""
    if not any(d.get("kind") == entry["kind"] and d.get("node") == entry["node"] for d in graph.diagnostics):
        graph.diagnostics.append(entry)


@register_pass
@dataclass(frozen=True)
class LiftAttention(Pass):
    """Lift spelled-out attention (softmax(q·kᵀ·scale + mask)·v and its variants) into Attention ops."""

    name: ClassVar[str] = "lift-attention"

    def run(self, graph: Graph) -> Graph:
        for sm in [n for n in graph.topological() if n.op.op_name == "Softmax"]:
            ctx = MatchContext(graph)
            em = Emitter(graph, sm.name, sm.source)
            mark = len(graph.nodes)
            try:
                lifted = lift_factorized(ctx, em, sm)   # CoaT: softmax over the tokens of K
                if lifted is None:
                    site = match_site(ctx, em, sm)
                    lifted = build(ctx, em, site)
                node, rewire = lifted
            except (NotAttention, IRError) as e:
                del graph.nodes[mark:]  # drop the layout ops inserted for a failed match
                _note(graph, {"kind": "attention-not-lifted", "node": sm.name, "source": sm.source, "reason": str(e)})
                continue
            _apply(graph, node, rewire)
            _note(graph, {"kind": "attention-lifted", "node": sm.name, "spec": node.spec.summary()})
        graph.dead_code_elimination()
        return LiftPositionBias().run(graph)   # constant ALiBi / T5 / Swin masks -> spec fields
