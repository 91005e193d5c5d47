"""MLA (naive and absorbed orders) and MTLA (temporal merge + stride-aware causal mask)."""
from __future__ import annotations

import numpy as np

from ..attention_ref import register_reference
from ._common import as_f64, finish, softmax_attention


@register_reference("mla")
def mla(spec, named):
    f = as_f64(named)
    feat = spec.kv_source
    q, cache, c, w_uk, w_uv = f["query"], f["key"], f["value"], f["w_uk"], f["w_uv"]
    L, r = feat.latent_dim, feat.rope_dim
    nope = spec.head_dim - r
    k_pe = cache[:, :, :, L:]                                   # (B, 1, S, r), shared by all heads
    if feat.absorbed:
        # W_uk into q: q_lat[h] = q_nope[h] W_uk[:, h, :]ᵀ; attention is MQA over the cached entry [c | k_pe]
        q_lat = np.einsum("bhsn,lhn->bhsl", q[..., :nope], w_uk)
        q_abs = np.concatenate([q_lat, q[..., nope:]], axis=-1)
        o_lat = softmax_attention(spec, q_abs, cache, c)          # (B, H, Sq, L)
        out = np.einsum("bhsl,lhv->bhsv", o_lat, w_uv)            # W_uv applied after attention
    else:
        k_nope = np.einsum("bsl,lhn->bhsn", c[:, 0], w_uk)
        H = spec.num_heads
        k = np.concatenate([k_nope, np.broadcast_to(k_pe, k_nope.shape[:3] + (r,))], axis=-1)
        v = np.einsum("bsl,lhv->bhsv", c[:, 0], w_uv)
        assert k.shape[1] == H
        out = softmax_attention(spec, q, k, v)
    return finish(out, named)


def temporal_merge(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """m_t = Σ_{u in chunk(t), u <= t} w_u x_u for x (B, H, S, D), w (B, S): running sums restarted every stride."""
    wx = x * w[:, None, :, None]
    out = np.empty_like(wx)
    for start in range(0, x.shape[2], stride):
        out[:, :, start:start + stride] = np.cumsum(wx[:, :, start:start + stride], axis=2)
    return out


def stride_causal_keep(n: int, stride: int) -> np.ndarray:
    """(n, n) keep-mask: query i sees merged entry t iff t == i, or t < i and t closes a chunk."""
    i = np.arange(n)[:, None]
    t = np.arange(n)[None, :]
    return (t == i) | ((t < i) & ((t + 1) % stride == 0))


@register_reference("mtla")
def mtla(spec, named):
    f = as_f64(named)
    s = spec.kv_source.stride
    w = f["merge_weights"]
    k = temporal_merge(f["key"], w, s)
    v = temporal_merge(f["value"], w, s)
    r = spec.kv_source.rope_dim
    if r:   # the decoupled RoPE key is per token, not merged
        k[..., -r:] = f["key"][..., -r:]
    n = k.shape[2]
    # the stride mask replaces plain causality (it is stricter than it)
    return finish(softmax_attention(spec, f["query"], k, v, keep=stride_causal_keep(n, s), use_position_mask=False), named)
