"""Talking-heads mixes around the softmax (CaiT's TalkingHeadAttn): Transpose(0,2,3,1) -> Linear(H, H) over the
head axis -> Transpose(0,3,1,2), on the logits before the softmax and/or on the probabilities after it. Also the
shapes of vision attention variants that are recognized only to name them in the diagnostics."""
from __future__ import annotations

from ...graph import Value
from .common import MatchContext, need, producer_kind

HEADS_LAST, HEADS_BACK = (0, 2, 3, 1), (0, 3, 1, 2)


def _linear_mix(lin, heads) -> tuple[Value, Value | None]:
    w = lin.inputs[1]
    need(tuple(w.shape) == (heads, heads),
         f"the Linear '{lin.name}' over the head axis has weight {tuple(w.shape)}, not ({heads}, {heads}): "
         "talking heads mix H heads into H heads")
    return w, (lin.inputs[2] if len(lin.inputs) > 2 else None)


def mix_before(ctx: MatchContext, v: Value) -> tuple[Value, Value, Value | None] | None:
    """(logits, weight (H_in, H_out), bias | None) when `v` is the mixed logits, else None."""
    if producer_kind(v) != "Transpose" or tuple(v.producer.op.perm) != HEADS_BACK:
        return None
    lin = v.producer.inputs[0].producer
    if lin is None or lin.op.op_name != "Linear":
        return None
    t = lin.inputs[0]
    if producer_kind(t) != "Transpose" or tuple(t.producer.op.perm) != HEADS_LAST:
        return None
    x = t.producer.inputs[0]
    for mid in (t, lin.outputs[0]):
        need(len(ctx.users_of(mid)) == 1, f"the talking-heads logit mix value '{mid.name}' is also used elsewhere")
    w, b = _linear_mix(lin, x.shape[1])
    return x, w, b


def mix_after(ctx: MatchContext, v: Value) -> tuple[Value, Value, Value | None] | None:
    """(mixed probabilities, weight, bias | None) when `v`'s only reader starts the probability mix, else None."""
    uses = ctx.users_of(v)
    if len(uses) != 1 or uses[0][0].op.op_name != "Transpose" or tuple(uses[0][0].op.perm) != HEADS_LAST:
        return None
    t = uses[0][0].outputs[0]
    lin_uses = ctx.users_of(t)
    if len(lin_uses) != 1 or lin_uses[0][0].op.op_name != "Linear" or lin_uses[0][1] != 0:
        return None
    lin = lin_uses[0][0]
    back = ctx.users_of(lin.outputs[0])
    need(len(back) == 1 and back[0][0].op.op_name == "Transpose" and tuple(back[0][0].op.perm) == HEADS_BACK,
         f"the Linear '{lin.name}' over the probabilities' head axis is not followed by the transpose back to "
         "(B, H, Sq, Skv) alone")
    w, b = _linear_mix(lin, v.shape[1])
    return back[0][0].outputs[0], w, b


def key_softmax_factorized(ctx: MatchContext, sm) -> bool:
    """Whether a softmax over the sequence axis feeds softmax(k)ᵀ·V (CoaT's factorized attention)."""
    uses = ctx.users_of(sm.outputs[0])
    if len(uses) != 1 or uses[0][0].op.op_name != "Transpose":
        return False
    perm = tuple(uses[0][0].op.perm)
    r = len(perm)
    if perm[-2:] != (r - 1, r - 2):
        return False
    nxt = ctx.users_of(uses[0][0].outputs[0])
    return len(nxt) == 1 and nxt[0][0].op.op_name == "MatMul" and nxt[0][1] == 0


def grid_view_terms(v: Value) -> bool:
    """Whether the scores are a view of a higher-rank sum (MViTv2's (B, H, qh, qw, kh, kw) grid + q·R terms)."""
    x = v.producer.inputs[0]
    return x.rank > v.rank and producer_kind(x) == "Binary" and x.producer.op.fn == "add"
