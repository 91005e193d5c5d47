"""Instance-dependent sparse attention (Sparsifiner top-k, block masks) and uniform context broadcasting."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import BlockSparse, TopkSparse, Uniform
from ._base import check, param
from ._projected import ProjectedAttention


class SparsifinerAttention(ProjectedAttention):
    """Sparsifiner ("Sparsifiner: Learning Sparse Instance-Dependent Attention for Efficient Vision Transformers",
    Wei et al. 2023): a light connectivity predictor (q and k projected to `predictor_rank` dims) scores token
    pairs; each query keeps its top_k keys and attention runs on that instance-dependent sparse pattern."""

    def __init__(self, embed_dim: int, num_heads: int, top_k: int, predictor_rank: int = 4):
        super().__init__(embed_dim, num_heads)
        check(top_k > 0 and predictor_rank > 0, f"top_k and predictor_rank must be positive, got {top_k}, {predictor_rank}")
        self.predictor = param(self.head_dim, predictor_rank)
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  score_mods=(TopkSparse(top_k),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        connectivity = (q @ self.predictor) @ (k @ self.predictor).transpose(-1, -2)
        return self.attend(q, k, v, connectivity=connectivity)


class BlockSparseAttention(ProjectedAttention):
    """Attention restricted to an instance-dependent block pattern: forward(x, block_mask) with block_mask bool
    (B|1, H|1, ceil(S/block_size), ceil(S/block_size)) saying which query block may see which key block."""

    def __init__(self, embed_dim: int, num_heads: int, block_size: int, causal: bool = False):
        super().__init__(embed_dim, num_heads)
        check(block_size > 0, f"block_size must be positive, got {block_size}")
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=causal), score_mods=(BlockSparse(block_size),))

    def forward(self, x: torch.Tensor, block_mask: torch.Tensor) -> torch.Tensor:
        return self.attend(*self.heads(x), block_mask=block_mask)


class ContextBroadcastAttention(ProjectedAttention):
    """Context broadcasting ("Scratching Visual Transformer's Back with Uniform Attention", Hyeon-Woo et al. 2023):
    uniform attention (the mean of the values) blended into softmax attention,
    out = (1 - weight)·attention + weight·mean(V); weight 0.5 is the paper's 0.5·x + 0.5·mean(x)."""

    def __init__(self, embed_dim: int, num_heads: int, weight: float = 0.5, causal: bool = False):
        super().__init__(embed_dim, num_heads)
        check(0 <= weight <= 1, f"weight must be in [0, 1], got {weight}")
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=causal), score_mods=(Uniform(float(weight)),))
