"""Multi-head attention in its head-ratio forms (MHA, GQA, MQA), cross-attention, and sliding windows."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ._base import check, merge_heads, split_heads
from .custom_op import attention


class MultiHeadAttention(nn.Module):
    """Multi-head attention (Vaswani et al.), with `num_kv_heads` < `num_heads` giving GQA (Ainslie et al.)
    and `num_kv_heads` = 1 MQA ("Fast Transformer Decoding: One Write-Head is All You Need", Shazeer 2019).

    forward(x, memory=None): self-attention over x (B, S, E), or cross-attention (encoder-decoder) with
    keys/values from `memory` (B, Sm, Em). `causal` masks future keys; `window` keeps keys within `window`
    positions (sliding-window / local attention). head_dim defaults to embed_dim // num_heads.
    """

    def __init__(self, embed_dim: int, num_heads: int, num_kv_heads: int | None = None, head_dim: int | None = None,
                 causal: bool = False, window: int | None = None, kv_dim: int | None = None):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check(num_heads > 0 and num_kv_heads > 0 and num_heads % num_kv_heads == 0,
              f"num_heads ({num_heads}) must be a positive multiple of num_kv_heads ({num_kv_heads})")
        check(window is None or window >= 0, f"window must be None or >= 0, got {window}")
        head_dim = head_dim or embed_dim // num_heads
        check(head_dim > 0, f"head_dim must be positive, got {head_dim}")
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        kv_dim = kv_dim or embed_dim
        self.q_proj = nn.Linear(embed_dim, num_heads * head_dim)
        self.k_proj = nn.Linear(kv_dim, num_kv_heads * head_dim)
        self.v_proj = nn.Linear(kv_dim, num_kv_heads * head_dim)
        self.o_proj = nn.Linear(num_heads * head_dim, embed_dim)
        mask = MaskSpec(causal=causal, window_left=window, window_right=None if (window is None or causal) else window)
        self.spec = AttentionSpec(num_heads, num_kv_heads, head_dim, scale=1 / math.sqrt(head_dim), mask=mask)

    def forward(self, x: torch.Tensor, memory: torch.Tensor | None = None) -> torch.Tensor:
        src = x if memory is None else memory
        q = split_heads(self.q_proj(x), self.num_heads)
        k = split_heads(self.k_proj(src), self.num_kv_heads)
        v = split_heads(self.v_proj(src), self.num_kv_heads)
        return self.o_proj(merge_heads(attention(self.spec, query=q, key=k, value=v)))


class CrossAttention(MultiHeadAttention):
    """Encoder-decoder cross-attention: queries from x (B, Sq, E), keys/values from memory (B, Skv, kv_dim)."""

    def __init__(self, embed_dim: int, num_heads: int, kv_dim: int | None = None, num_kv_heads: int | None = None):
        super().__init__(embed_dim, num_heads, num_kv_heads=num_kv_heads, kv_dim=kv_dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:  # memory is required
        return super().forward(x, memory)


class SlidingWindowAttention(MultiHeadAttention):
    """Local attention: each query sees keys within `window` positions (causal: the `window` previous ones)."""

    def __init__(self, embed_dim: int, num_heads: int, window: int, causal: bool = True, num_kv_heads: int | None = None):
        super().__init__(embed_dim, num_heads, num_kv_heads=num_kv_heads, causal=causal, window=window)
