"""Efficient Conformer attention: grouped and strided multi-head self-attention."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import Grouped, Strided
from ._base import check, merge_heads, split_heads
from .custom_op import attention


class _Projected(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        check(num_heads > 0 and embed_dim % num_heads == 0, f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.o_proj = nn.Linear(embed_dim, embed_dim)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (split_heads(t, self.num_heads) for t in self.qkv(x).chunk(3, dim=-1))
        return self.o_proj(merge_heads(attention(self.spec, query=q, key=k, value=v)))


class GroupedAttention(_Projected):
    """Grouped multi-head self-attention ("Efficient Conformer: Progressive Downsampling and Grouped Attention for
    Automatic Speech Recognition", Burchi & Vielzeuf 2021): `group_size` consecutive token vectors are
    concatenated and then split into heads, so attention runs over S/g tokens of g·d features: O(n²d) -> O(n²d/g).
    As in the authors' code, S is zero-padded (after the projections) to a multiple of g and the output sliced back.
    `qkv` holds the authors' query/key/value layers stacked ([Wq; Wk; Wv])."""

    def __init__(self, embed_dim: int, num_heads: int, group_size: int, causal: bool = False):
        super().__init__(embed_dim, num_heads)
        check(group_size > 0, f"group_size must be positive, got {group_size}")
        self.group_size = group_size
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(group_size * self.head_dim),
                                  mask=MaskSpec(causal=causal), kv_source=Grouped(group_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._attend(x)


class StridedAttention(_Projected):
    """Strided multi-head self-attention (Efficient Conformer): only every `stride`-th position queries, so the
    layer downsamples the sequence to ceil(S/stride) while attending to all keys."""

    def __init__(self, embed_dim: int, num_heads: int, stride: int):
        super().__init__(embed_dim, num_heads)
        check(stride > 0, f"stride must be positive, got {stride}")
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  kv_source=Strided(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._attend(x)
