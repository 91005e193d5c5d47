"""Talking-heads attention spelled out: q·kᵀ (GQA keys repeated), scale, softcap, the (H, H) logit mix as a Linear
over the head axis, masks, Softmax, the probability mix, ·V. Every score is materialized (the mixes need all heads
of a score at once); a fully masked row gives what the Softmax op gives (the model's own graph does the same)."""
from __future__ import annotations

import numpy as np

from ...interpreter.attention_ref import position_keep_mask
from . import register_decomposition
from ._build import Builder, static


def _mix(b: Builder, x, w, bias, label: str):
    """(B, H, Sq, Skv) -> Σ_g x[:, g]·w[g, h] + bias[h], as the model writes it: heads last, Linear, heads back."""
    t = b.transpose(x, (0, 2, 3, 1), f"{label}_heads_last")
    return b.transpose(b.binary("add", b.linear(t, w, label), bias, f"{label}_bias"), (0, 3, 1, 2), f"{label}_heads")


@register_decomposition("talking_heads")
def talking_heads(b: Builder) -> list:
    spec, feat = b.spec, b.spec.head_mixing
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    g = spec.num_heads // spec.num_kv_heads
    k, v = b.repeat_heads(k, g, "k_rep"), b.repeat_heads(v, g, "v_rep")
    s = b.scale(b.matmul(q, b.transpose(k, (0, 1, 3, 2), "k_t"), "logits"), spec.scale, "scaled")
    if spec.softcap:
        c = spec.softcap
        s = b.scale(b.unary("tanh", b.scale(s, 1.0 / c, "cap_in")), c, "capped")
    if feat.pre:
        s = _mix(b, s, b.named["talk_pre"], b.named["talk_pre_bias"], "talk_pre")
    if spec.mask.input == "additive":
        s = b.binary("add", s, b.named["mask"], "masked")
    elif spec.mask.input == "bool":
        s = b.where(b.named["mask"], s, b.scalar(-np.inf, "neg_inf"), "masked")
    keep = None
    if not spec.mask.is_empty and (spec.mask.causal or spec.mask.window_left is not None or spec.mask.window_right is not None):
        n = static(q.shape[2], "talking_heads: query length")
        m = static(k.shape[2], "talking_heads: key length")
        keep = position_keep_mask(spec.mask, n, m)
    if keep is not None:
        s = b.where(b.const(keep, "position_keep", dtype="bool"), s, b.scalar(-np.inf, "neg_inf_pos"), "position_masked")
    p = b.softmax(s, -1, "probs")
    if feat.post:
        p = _mix(b, p, b.named["talk_post"], b.named["talk_post_bias"], "talk_post")
    return [b.matmul(p, v, "out")]
