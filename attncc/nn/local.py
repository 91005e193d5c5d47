"""Local + global head splits (LS-attention, multi-window MHA) and HaloNet blocked local attention."""
from __future__ import annotations

import math

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import BlockedLocal, MultiWindow
from ._base import check
from ._projected import ProjectedAttention


class LocalGlobalAttention(ProjectedAttention):
    """Per-head windows: head h sees keys within windows[h] positions, None = a global head.
    Covers LS-attention ("Short-Range Dependency Effects on Transformer Instability and a Decomposed Attention
    Solution": local short-range heads + global heads) and Multi-Window MHA ("Masked Autoencoders with
    Multi-Window Local-Global Attention Are Better Audio Learners": heads of distinct window sizes)."""

    def __init__(self, embed_dim: int, num_heads: int, windows, causal: bool = False, num_kv_heads: int | None = None):
        super().__init__(embed_dim, num_heads, num_kv_heads)
        windows = tuple(windows)
        check(len(windows) == num_heads, f"windows has {len(windows)} entries for {num_heads} heads")
        for w in windows:
            check(w is None or (isinstance(w, int) and w >= 0), f"each window must be None (global) or an int >= 0, got {w!r}")
        self.spec = AttentionSpec(num_heads, self.num_kv_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=causal), score_mods=(MultiWindow(windows),))


class HaloAttention(ProjectedAttention):
    """Blocked local self-attention with halos ("Scaling Local Self-Attention for Parameter Efficient Visual
    Backbones", HaloNets, Vaswani et al. 2021), 1-D: queries of each `block_size` block attend to that block
    widened by `halo` tokens on each side."""

    def __init__(self, embed_dim: int, num_heads: int, block_size: int, halo: int):
        super().__init__(embed_dim, num_heads)
        check(block_size > 0 and halo >= 0, f"block_size must be > 0 and halo >= 0, got {block_size}, {halo}")
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  score_mods=(BlockedLocal(block_size, halo),))
