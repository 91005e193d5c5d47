"""Local attention: per-head windows (sliding window, LS-attention, multi-window MHA) and HaloNet blocks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..attention_spec import register_feature
from ._common import check, positive_int
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
