"""Linear attention in matrix form. Non-causal: o = scale · φ(q) (φ(k)ᵀ v), normalized by φ(q)·Σφ(k).
Causal linear / gated rules: the parallel (quadratic) form o = scale · ((φ(q) φ(k)ᵀ) ⊙ D) v with D the causal
mask (gated: D[t, u] = exp(G_t - G_u), G = cumsum of the log decay, as a triangular matmul). The delta rules
are recurrences with a state-dependent update (a triangular solve in matrix form): they stay on the reference."""
from __future__ import annotations

import numpy as np

from . import register_decomposition
from ._build import Builder, Undecomposable, static


def feature_map(b: Builder, x, name: str, label: str):
    """identity, elu(x) + 1 = x + 1 for x > 0 else exp(x), or (key_softmax, keys) a Softmax over the tokens."""
    if name == "key_softmax":
        return b.softmax(x, 2, f"{label}_softmax_tokens") if label == "k" else x
    if name != "elu_plus_one":
        return x
    zero = b.scalar(0.0, f"{label}_zero")
    pos = b.binary("add", x, b.scalar(1.0, f"{label}_one"), f"{label}_plus_one")
    neg = b.unary("exp", b.binary("min", x, zero, f"{label}_neg_part"), f"{label}_exp")
    return b.where(b.binary("gt", x, zero, f"{label}_positive"), pos, neg, f"{label}_phi")


@register_decomposition("linear")
def linear(b: Builder) -> list:
    feat, spec = b.spec.kv_source, b.spec
    if feat.update_rule in ("delta", "gated_delta"):
        raise Undecomposable(f"linear attention update_rule {feat.update_rule!r} is a recurrence whose state update "
                             "depends on the state (no matmul form without a triangular solve)")
    g = spec.num_heads // spec.num_kv_heads
    q = feature_map(b, b.named["query"], feat.feature_map, "q")
    k = b.repeat_heads(feature_map(b, b.named["key"], feat.feature_map, "k"), g, "k_heads")
    v = b.repeat_heads(b.named["value"], g, "v_heads")
    kt = b.transpose(k, (0, 1, 3, 2), "k_t")
    if not spec.mask.causal:   # every query reads the full state S = φ(k)ᵀ v
        out = b.matmul(q, b.matmul(kt, v, "state"), "q_state")
        if feat.normalize:
            ksum = b.reduce("sum", k, (2,), keepdims=True, label="k_sum")                  # (B, H, 1, Dk)
            den = b.matmul(q, b.transpose(ksum, (0, 1, 3, 2), "k_sum_t"), "normalizer")     # (B, H, S, 1)
            return [b.binary("div", out, den, "normalized")]   # scale cancels between numerator and normalizer
        return [b.scale(out, spec.scale)]
    n = static(q.shape[2], "linear: sequence length")
    causal = np.tril(np.ones((n, n)))
    scores = b.matmul(q, kt, "scores")                                                     # (B, H, S, S)
    if feat.update_rule == "gated":
        B = q.shape[0]
        decay = b.repeat_heads(b.reshape(b.named["decay"], (B, spec.num_kv_heads, n, 1), "decay_4d"), g, "decay_heads")
        G = b.matmul(b.const(causal, "cumsum"), decay, "log_decay_sum")                   # (B, H, S, 1)
        diff = b.binary("sub", G, b.transpose(G, (0, 1, 3, 2), "log_decay_sum_t"), "log_decay_diff")
        lower = b.const(causal.astype(bool), "causal", dtype="bool")
        # zero the upper triangle before exp: G_t - G_u > 0 there and could overflow
        weights = b.unary("exp", b.where(lower, diff, b.scalar(-np.inf, "neg_inf"), "log_decay_causal"), "decay_matrix")
    else:
        weights = b.const(causal, "causal")
    masked = b.binary("mul", scores, weights, "masked_scores")
    out = b.matmul(masked, v, "out_unscaled")
    if feat.normalize:
        den = b.reduce("sum", masked, (-1,), keepdims=True, label="normalizer")
        return [b.binary("div", out, den, "normalized")]
    return [b.scale(out, spec.scale)]
