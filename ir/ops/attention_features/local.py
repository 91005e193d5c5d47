"""Local attention: per-head windows (sliding window, LS-attention, multi-window MHA) and HaloNet blocks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ... import dims as D
from ...errors import require
from ..attention_spec import register_feature
from ._common import check, expect, positive_int
from ._score_mod import ScoreMod


@register_feature
@dataclass(frozen=True)
class MultiWindow(ScoreMod):
    """Head h attends keys with |pos_i - j| <= windows[h]; None = global head. Combined (AND) with spec.mask, so
    causal + windows gives causal sliding windows. One window for all heads = sliding-window attention;
    a mix of windows and None = LS-attention (local + global heads); distinct windows = multi-window MHA."""

    kind: ClassVar[str] = "multi_window"
    variant_label: ClassVar[str] = "local-global"
    windows: tuple = ()

    def __post_init__(self):
        check(isinstance(self.windows, tuple) and len(self.windows) > 0, "multi_window.windows must be a non-empty tuple")
        for w in self.windows:
            check(w is None or (isinstance(w, int) and w >= 0),
                  f"multi_window.windows entries must be ints >= 0 or None (global), got {w!r}")

    def validate(self, spec):
        super().validate(spec)
        check(len(self.windows) == spec.num_heads,
              f"multi_window: {len(self.windows)} windows given for {spec.num_heads} heads")


@register_feature
@dataclass(frozen=True)
class BlockedLocal(ScoreMod):
    """HaloNet-style blocked local attention (1-D): queries in block n = [n·b, (n+1)·b) see the keys of their
    block widened by `halo` on both sides, [n·b - halo, (n+1)·b + halo)."""

    kind: ClassVar[str] = "blocked_local"
    variant_label: ClassVar[str] = "blocked-local"
    block_size: int = 8
    halo: int = 0

    def __post_init__(self):
        positive_int("blocked_local", "block_size", self.block_size)
        check(isinstance(self.halo, int) and self.halo >= 0, f"blocked_local.halo must be an int >= 0, got {self.halo!r}")


@register_feature
@dataclass(frozen=True)
class HeadBlocks(ScoreMod):
    """Multi-window MHA as Yadav et al. (ICLR 2024, SarthakYadav/mwmae-jax-official) compute it: head h with
    block_sizes[h] = b > 0 attends only within its non-overlapping block [n·b, (n+1)·b) (self-attention; the
    length must be a multiple of every b), block_sizes[h] = 0 is a global head. With `rel_bias`, the input
    rel_pos_bias (H, 2·B - 1), B = max(block_sizes), adds rel_pos_bias[h, (i - j) + B - 1] to a blocked head's
    scores (the authors' per-head relative position table of 2b - 1 entries sits at its centre). Combined (AND)
    with spec.mask. It stands alone: no other score mod on the same op.

    `shift` = the authors' shift_windows=True: a blocked head rolls the sequence by -b//2 before blocking (Swin's
    shifted windows, 1-D), so blocks start at b//2 and positions are measured in the rolled order; the block that
    wraps around keeps its two segments apart (the authors' -100 mask, a hard mask here: exp(-100) is below
    fp32 resolution next to 1). `layout(n)` gives the resulting keep mask and table indices."""

    kind: ClassVar[str] = "head_blocks"
    variant_label: ClassVar[str] = "multi-window"
    block_sizes: tuple = ()
    rel_bias: bool = True
    shift: bool = False

    def __post_init__(self):
        check(isinstance(self.block_sizes, tuple) and len(self.block_sizes) > 0
              and all(isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in self.block_sizes),
              f"head_blocks.block_sizes must be a non-empty tuple of ints >= 0 (0 = global head), got {self.block_sizes!r}")
        check(isinstance(self.rel_bias, bool), f"head_blocks.rel_bias must be a bool, got {self.rel_bias!r}")
        check(isinstance(self.shift, bool), f"head_blocks.shift must be a bool, got {self.shift!r}")

    def rolled(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per head (H, n): position in the rolled order, its block id, and its segment label (the authors'
        img_mask: 0 before the last block, 1 / 2 for the last block's unwrapped / wrapped parts)."""
        rows = []
        for b in self.block_sizes:
            size = b or n                       # a global head: one block, no roll
            s = size // 2 if (self.shift and b) else 0
            r = (np.arange(n) - s) % n
            label = np.where(r < n - size, 0, np.where(r < n - s, 1, 2))
            rows.append((r, r // size, label))
        return tuple(np.stack(x) for x in zip(*rows))

    def layout(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(keep (H, n, n) bool, index (H, n, n) into rel_pos_bias's second axis: (r_i - r_j) + max_block - 1)."""
        r, block, label = self.rolled(n)
        keep = (block[:, :, None] == block[:, None, :]) & (label[:, :, None] == label[:, None, :])
        B = max(self.max_block, 1)
        index = np.clip(r[:, :, None] - r[:, None, :] + B - 1, 0, 2 * B - 2)
        return keep, index

    @property
    def max_block(self) -> int:
        return max(self.block_sizes)

    def extra_inputs(self):
        return ("rel_pos_bias",) if self.rel_bias else ()

    def validate(self, spec):
        super().validate(spec)
        check(len(self.block_sizes) == spec.num_heads,
              f"head_blocks: {len(self.block_sizes)} block sizes given for {spec.num_heads} heads")
        check(spec.score_mods == (self,), "head_blocks cannot be combined with other score mods")

    def check_inputs(self, spec, t, node, B, Sq, Skv) -> None:
        require(D.equal(Sq, Skv), node, f"head_blocks: self-attention only (query length {Sq}, key length {Skv})")
        for b in set(self.block_sizes) - {0}:
            require(not isinstance(Sq, int) or Sq % b == 0, node,
                    f"head_blocks: sequence length {Sq} is not a multiple of block size {b} (the authors' layout)")
        if self.rel_bias:
            n = 2 * max(self.max_block, 1) - 1
            expect(t, "rel_pos_bias", node, True, (spec.num_heads, n), f"(H, 2·max_block - 1) = ({spec.num_heads}, {n})")
