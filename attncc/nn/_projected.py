"""Base of the modules that project x to q/k/v heads, call the attention op, and project back."""
from __future__ import annotations

import torch
from torch import nn

from ._base import check, merge_heads, split_heads
from .custom_op import attention


class ProjectedAttention(nn.Module):
    """x (B, S, E) -> q/k/v heads (Hkv kv heads) -> attention(self.spec, ...) -> (B, S, E).
    Subclasses set `self.spec` and may pass extra op inputs to `attend`."""

    def __init__(self, embed_dim: int, num_heads: int, num_kv_heads: int | None = None, head_dim: int | None = None):
        super().__init__()
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check(num_heads > 0 and num_kv_heads > 0 and num_heads % num_kv_heads == 0,
              f"num_heads ({num_heads}) must be a positive multiple of num_kv_heads ({num_kv_heads})")
        self.head_dim = head_dim or embed_dim // num_heads
        check(self.head_dim > 0, f"head_dim must be positive (embed_dim {embed_dim}, num_heads {num_heads})")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.q_proj = nn.Linear(embed_dim, num_heads * self.head_dim)
        self.k_proj = nn.Linear(embed_dim, num_kv_heads * self.head_dim)
        self.v_proj = nn.Linear(embed_dim, num_kv_heads * self.head_dim)
        self.o_proj = nn.Linear(num_heads * self.head_dim, embed_dim)

    def heads(self, x: torch.Tensor):
        return (split_heads(self.q_proj(x), self.num_heads), split_heads(self.k_proj(x), self.num_kv_heads),
                split_heads(self.v_proj(x), self.num_kv_heads))

    def attend(self, q, k, v, **extra) -> torch.Tensor:
        return self.o_proj(merge_heads(attention(self.spec, query=q, key=k, value=v, **extra)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(*self.heads(x))
