"""MLA (absorbed and naive orders) and MTLA (temporal merge as a block-triangular matmul + stride-aware mask)."""
from __future__ import annotations

import numpy as np

from . import register_decomposition
from ._build import Builder, static, with_mask


@register_decomposition("mla")
def mla(b: Builder) -> list:
    """absorbed: [q_nope·W_uk | q_rope] -> MQA over the cached entry (Dqk = latent+rope, Dv = latent) -> ·W_uv.
    naive: up-project the latent to per-head K = [c·W_uk | k_pe] and V = c·W_uv, then MHA."""
    feat, spec = b.spec.kv_source, b.spec
    q, cache, c = b.named["query"], b.named["key"], b.named["value"]
    w_uk, w_uv = b.named["w_uk"], b.named["w_uv"]
    L, r, H = feat.latent_dim, feat.rope_dim, spec.num_heads
    nope = spec.head_dim - r
    if feat.absorbed:
        q_nope = b.slice(q, 3, 0, nope, label="q_nope")
        w_uk_h = b.transpose(w_uk, (1, 2, 0), "w_uk_heads")                   # (H, nope, L)
        q_lat = b.per_head_matmul(q_nope, w_uk_h, "q_latent")                  # (B, H, Sq, L)
        q_abs = b.concat([q_lat, b.slice(q, 3, nope, None, label="q_rope")] if r else [q_lat], 3, "q_absorbed")
        attn = b.plain_spec(num_kv_heads=1, head_dim=L + r, v_head_dim=L)
        o_lat = b.attention(attn, q_abs, cache, c, kernel="v-from-k")          # (B, H, Sq, L); V = K[..., :L]
        w_uv_h = b.transpose(w_uv, (1, 0, 2), "w_uv_heads")                    # (H, L, Dv)
        return [b.per_head_matmul(o_lat, w_uv_h, "out")]
    B, _, S, _ = c.shape
    k_nope = b.linear(c, b.reshape(w_uk, (L, H * nope), "w_uk_flat"), "k_nope")        # (B, 1, S, H·nope)
    k_nope = b.transpose(b.reshape(k_nope, (B, S, H, nope), "k_nope_heads"), (0, 2, 1, 3), "k_nope_bhsd")
    if r:
        k_pe = b.expand(b.slice(cache, 3, L, None, label="k_pe"), (B, H, S, r), "k_pe_heads")
        k = b.concat([k_nope, k_pe], 3, "k")
    else:
        k = k_nope
    Dv = spec.v_head_dim
    v = b.linear(c, b.reshape(w_uv, (L, H * Dv), "w_uv_flat"), "v")
    v = b.transpose(b.reshape(v, (B, S, H, Dv), "v_heads"), (0, 2, 1, 3), "v_bhsd")
    return [b.attention(b.plain_spec(num_kv_heads=H), q, k, v)]


def chunk_prefix_matrix(n: int, stride: int) -> np.ndarray:
    """(n, n) T with (T @ x)_t = Σ_{u in chunk(t), u <= t} x_u: running sums restarted every `stride` tokens."""
    t, u = np.arange(n)[:, None], np.arange(n)[None, :]
    return ((u <= t) & (u // stride == t // stride)).astype(np.float64)


def stride_causal_keep(n: int, stride: int) -> np.ndarray:
    """Query i sees merged entry t iff t == i, or t < i and t closes a chunk (MTLA's stride-aware causal mask)."""
    i, t = np.arange(n)[:, None], np.arange(n)[None, :]
    return (t == i) | ((t < i) & ((t + 1) % stride == 0))


@register_decomposition("mtla")
def mtla(b: Builder) -> list:
    """k/v weighted by merge_weights, merged by the chunk-prefix matrix, then causal attention AND the stride mask."""
    s = b.spec.kv_source.stride
    k, v, w = b.named["key"], b.named["value"], b.named["merge_weights"]
    B, _, S, _ = k.shape
    n = static(S, "mtla: sequence length")
    w4 = b.reshape(w, (B, 1, n, 1), "merge_weights_4d")
    T = b.const(chunk_prefix_matrix(n, s), "chunk_prefix")
    merged = [b.matmul(T, b.binary("mul", x, w4, f"{name}_weighted"), f"{name}_merged") for name, x in (("k", k), ("v", v))]
    r = b.spec.kv_source.rope_dim
    if r:   # the decoupled RoPE channels of the key are per token: take them from the unmerged key
        d = b.spec.head_dim
        merged[0] = b.concat([b.slice(merged[0], 3, 0, d - r, label="k_merged_nope"),
                              b.slice(k, 3, d - r, d, label="k_pe")], 3, "k_merged_rope")
    keep = b.const(stride_causal_keep(n, s), "stride_mask", dtype="bool")
    # the stride mask is stricter than causality; keeping `causal` lets the kernel skip the upper blocks
    spec = with_mask(b.plain_spec(), input="bool")
    return [b.attention(spec, b.named["query"], merged[0], merged[1], keep)]
