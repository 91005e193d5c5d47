"""Low-rank factorized multi-head attention querying global context vectors."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec
from ..ir.ops.attention_features import GlobalQuery
from ._base import check, merge_heads, param, split_heads
from .custom_op import attention


class LowRankGlobalAttention(nn.Module):
    """Compact multi-head attention ("Low Rank Factorization for Compact Multi-Head Self-Attention", Mehta et al.
    2019): per head, `num_queries` learned global context vectors query the tokens instead of every token
    querying every token, and the key projection is factorized through rank `rank` (x U V). The head size is a
    free argument independent of embed_dim / num_heads ("Low-Rank Bottleneck in Multi-head Attention Models",
    Bhojanapalli et al. 2020). forward(x (B, S, E)) -> (B, num_queries, E) pooled summaries."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, rank: int, num_queries: int = 1):
        super().__init__()
        check(rank > 0 and head_dim > 0 and num_heads > 0, "rank, head_dim and num_heads must be positive")
        self.num_heads = num_heads
        self.context = param(1, num_heads, num_queries, head_dim, scale=1.0)
        self.k_down = nn.Linear(embed_dim, rank, bias=False)
        self.k_up = nn.Linear(rank, num_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, num_heads * head_dim)
        self.o_proj = nn.Linear(num_heads * head_dim, embed_dim)
        self.spec = AttentionSpec(num_heads, num_heads, head_dim, scale=1 / math.sqrt(head_dim),
                                  kv_source=GlobalQuery(num_queries, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = split_heads(self.k_up(self.k_down(x)), self.num_heads)
        v = split_heads(self.v_proj(x), self.num_heads)
        return self.o_proj(merge_heads(attention(self.spec, query=self.context, key=k, value=v)))
