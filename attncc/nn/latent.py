"""Latent-KV attention modules: MLA (DeepSeek-V2/V3) and MTLA (temporal latent merge)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import MLA, MTLA
from ._base import apply_rope, check, merge_heads, param, rope_tables, split_heads
from .custom_op import attention


class MultiHeadLatentAttention(nn.Module):
    """Multi-head latent attention ("DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language
    Model", 2024; DeepSeek-V3): keys/values are up-projections (W_UK, W_UV) of one compressed latent c_kv per
    token, plus a decoupled RoPE key k_pe shared by all heads. Only [c_kv | k_pe] is cached: latent_dim + rope_dim
    values per token ("The New LLM Bottleneck"; "A Random Matrix Theory Perspective on MLA" studies the
    decoupled-RoPE choice used here).

    `absorbed=True` runs the decode-friendly order (W_UK folded into q, W_UV applied to the attention output);
    it equals the naive order. forward(x, cache=None) -> y, or (y, new_cache) when a cache (B, P, latent+rope)
    is passed (decode): the new tokens sit at positions P.. and attend causally to the whole cache.
    """

    def __init__(self, embed_dim: int, num_heads: int, latent_dim: int, nope_dim: int, rope_dim: int,
                 v_head_dim: int, absorbed: bool = False, max_len: int = 4096):
        super().__init__()
        check(rope_dim % 2 == 0, f"rope_dim must be even, got {rope_dim}")
        check(min(num_heads, latent_dim, nope_dim, v_head_dim) > 0, "num_heads, latent_dim, nope_dim, v_head_dim must be positive")
        self.num_heads, self.latent_dim, self.nope_dim, self.rope_dim = num_heads, latent_dim, nope_dim, rope_dim
        self.q_proj = nn.Linear(embed_dim, num_heads * (nope_dim + rope_dim))
        self.kv_down = nn.Linear(embed_dim, latent_dim + rope_dim)
        self.w_uk = param(latent_dim, num_heads, nope_dim)
        self.w_uv = param(latent_dim, num_heads, v_head_dim)
        self.o_proj = nn.Linear(num_heads * v_head_dim, embed_dim)
        cos, sin = rope_tables(max_len, rope_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.set_absorbed(absorbed)

    def set_absorbed(self, absorbed: bool) -> None:
        """Switch between the naive and the absorbed computation order (same numbers)."""
        d = self.nope_dim + self.rope_dim
        self.spec = AttentionSpec(self.num_heads, 1, d, v_head_dim=self.w_uv.shape[-1], scale=1 / math.sqrt(d),
                                  mask=MaskSpec(causal=True, alignment="bottom_right"),
                                  kv_source=MLA(self.latent_dim, self.rope_dim, absorbed))

    @property
    def kv_cache_per_token(self) -> int:
        return self.spec.kv_source.kv_cache_per_token

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None):
        B, S, _ = x.shape
        P = 0 if cache is None else cache.shape[1]
        cos, sin = self.cos[P:P + S], self.sin[P:P + S]
        q = split_heads(self.q_proj(x), self.num_heads)
        q = torch.cat([q[..., :self.nope_dim], apply_rope(q[..., self.nope_dim:], cos, sin)], dim=-1)
        kv = self.kv_down(x)
        entry = torch.cat([kv[..., :self.latent_dim], apply_rope(kv[..., self.latent_dim:], cos, sin)], dim=-1)
        full = entry if cache is None else torch.cat([cache, entry], dim=1)
        key = full[:, None]
        o = attention(self.spec, query=q, key=key, value=key[..., :self.latent_dim], w_uk=self.w_uk, w_uv=self.w_uv)
        y = self.o_proj(merge_heads(o))
        return y if cache is None else (y, full)


class TemporalLatentAttention(nn.Module):
    """Multi-head temporal latent attention ("Multi-head Temporal Latent Attention", Wang et al. 2025): a per-token
    latent c_t is up-projected to K/V, and a hyper-network (sigmoid(x W_w)) weights tokens that are merged in
    chunks of `stride` along time, shrinking the KV cache by `stride`. The stride-aware causal mask lets each
    query see the completed chunks before it plus its own partial chunk, matching incremental decoding."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, latent_dim: int, stride: int):
        super().__init__()
        check(stride > 0, f"stride must be a positive int, got {stride}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embed_dim, num_heads * head_dim)
        self.kv_down = nn.Linear(embed_dim, latent_dim)
        self.k_up = nn.Linear(latent_dim, num_heads * head_dim, bias=False)
        self.v_up = nn.Linear(latent_dim, num_heads * head_dim, bias=False)
        self.merge = nn.Linear(embed_dim, 1)
        self.o_proj = nn.Linear(num_heads * head_dim, embed_dim)
        self.spec = AttentionSpec(num_heads, num_heads, head_dim, scale=1 / math.sqrt(head_dim),
                                  mask=MaskSpec(causal=True), kv_source=MTLA(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.kv_down(x)
        q = split_heads(self.q_proj(x), self.num_heads)
        k = split_heads(self.k_up(c), self.num_heads)
        v = split_heads(self.v_up(c), self.num_heads)
        w = torch.sigmoid(self.merge(x)).squeeze(-1)
        return self.o_proj(merge_heads(attention(self.spec, query=q, key=k, value=v, merge_weights=w)))
