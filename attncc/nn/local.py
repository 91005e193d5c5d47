"""Local + global head splits (LS-attention, sliding bands), multi-window MHA (per-head blocks) and HaloNet."""
from __future__ import annotations

import math

from ..ir.ops import AttentionSpec, MaskSpec
import numpy as np
import torch
from torch import nn

from ..ir.ops.attention_features import BlockedLocal, HeadBlocks, MultiWindow
from ._base import check
from ._projected import ProjectedAttention


class LocalGlobalAttention(ProjectedAttention):
    """Per-head windows: head h sees keys within windows[h] positions, None = a global head.
    Covers LS-attention ("Short-Range Dependency Effects on Transformer Instability and a Decomposed Attention
    Solution": local short-range heads + global heads). Not MW-MHA: its authors use non-overlapping blocks with a
    relative position bias, see MultiWindowAttention."""

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


class MultiWindowAttention(ProjectedAttention):
    """Multi-window MHA (Yadav et al., "Masked Autoencoders with Multi-Window Local-Global Attention Are Better
    Audio Learners", ICLR 2024) as SarthakYadav/mwmae-jax-official computes it: head h splits the sequence into
    non-overlapping blocks of block_sizes[h] tokens (0 = a global head) and adds its own learned relative position
    bias inside the block. The sequence length must be a multiple of every non-zero block size.
    `shift_windows=True` is the authors' option of the same name (blocks rolled by b//2, Swin-style)."""

    def __init__(self, embed_dim: int, num_heads: int, block_sizes, rel_bias: bool = True, qkv_bias: bool = False,
                 shift_windows: bool = False):
        super().__init__(embed_dim, num_heads)
        block_sizes = tuple(int(b) for b in block_sizes)
        check(len(block_sizes) == num_heads, f"block_sizes has {len(block_sizes)} entries for {num_heads} heads")
        self.block_sizes = block_sizes
        feat = HeadBlocks(block_sizes, rel_bias, bool(shift_windows))
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  score_mods=(feat,))
        if not qkv_bias:   # the authors' qkv Dense has no bias by default; zero and frozen keeps one code path
            for lin in (self.q_proj, self.k_proj, self.v_proj):
                nn.init.zeros_(lin.bias)
                lin.bias.requires_grad_(False)
        # One (H, 2·max_block - 1) table: head h's 2·b_h - 1 entries sit at its centre (offset max_block - b_h).
        self.rel_pos_bias = nn.Parameter(torch.randn(num_heads, 2 * max(feat.max_block, 1) - 1) * 0.02) if rel_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        extra = {} if self.rel_pos_bias is None else {"rel_pos_bias": self.rel_pos_bias}
        return self.attend(*self.heads(x), **extra)

    @torch.no_grad()
    def load_mwmae(self, params: dict[str, np.ndarray]) -> "MultiWindowAttention":
        """Load the authors' WindowedMultiHeadAttention params (flax names: qkv/kernel (E, 3E), optional qkv/bias,
        proj/kernel, proj/bias, attn_heads_<h>/relative_position_bias_table (2·b_h - 1, 1) for blocked heads)."""
        E = self.o_proj.in_features
        w = torch.from_numpy(np.asarray(params["qkv/kernel"], np.float32))
        b = torch.from_numpy(np.asarray(params.get("qkv/bias", np.zeros(3 * E)), np.float32))
        for i, lin in enumerate((self.q_proj, self.k_proj, self.v_proj)):   # flax Dense: y = x @ kernel + bias
            lin.weight.copy_(w[:, i * E:(i + 1) * E].T)
            lin.bias.copy_(b[i * E:(i + 1) * E])
        self.o_proj.weight.copy_(torch.from_numpy(np.asarray(params["proj/kernel"], np.float32)).T)
        self.o_proj.bias.copy_(torch.from_numpy(np.asarray(params["proj/bias"], np.float32)))
        if self.rel_pos_bias is not None:
            self.rel_pos_bias.zero_()
            B = self.rel_pos_bias.shape[1] // 2 + 1
            for h, bs in enumerate(self.block_sizes):
                if bs:
                    t = np.asarray(params[f"attn_heads_{h}/relative_position_bias_table"], np.float32).reshape(-1)
                    self.rel_pos_bias[h, B - bs:B + bs - 1] = torch.from_numpy(t)
        return self
