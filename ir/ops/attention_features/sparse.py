"""Instance-dependent sparse attention (Sparsifiner top-k, block masks) and uniform context broadcasting."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from ..attention_spec import register_feature
from ._common import check, expect, positive_int
from ._score_mod import ScoreMod


@register_feature
@dataclass(frozen=True)
class TopkSparse(ScoreMod):
    """Sparsifiner: each query keeps the `top_k` keys with the highest predicted connectivity
    (input `connectivity`, (B|1, H|1, Sq, Skv), from a low-rank connectivity predictor); the rest are masked."""

    kind: ClassVar[str] = "topk_sparse"
    variant_label: ClassVar[str] = "sparse"
    top_k: int = 8

    def __post_init__(self):
        positive_int("topk_sparse", "top_k", self.top_k)

    def extra_inputs(self):
        return ("connectivity",)

    def check_inputs(self, spec, t, node, B, Sq, Skv):
        expect(t, "connectivity", node, True, ((B, 1), (spec.num_heads, 1), Sq, Skv), f"(B|1, H|1, Sq, Skv)")


@register_feature
@dataclass(frozen=True)
class BlockSparse(ScoreMod):
    """Block connectivity: query block a may see key block c iff block_mask[b, h, a, c] (bool,
    (B|1, H|1, ceil(Sq/block), ceil(Skv/block)))."""

    kind: ClassVar[str] = "block_sparse"
    variant_label: ClassVar[str] = "sparse"
    block_size: int = 16

    def __post_init__(self):
        positive_int("block_sparse", "block_size", self.block_size)

    def extra_inputs(self):
        return ("block_mask",)

    def check_inputs(self, spec, t, node, B, Sq, Skv):
        nb = [(-(-s // self.block_size)) if isinstance(s, int) else None for s in (Sq, Skv)]
        expect(t, "block_mask", node, False, ((B, 1), (spec.num_heads, 1), nb[0], nb[1]),
               f"bool (B|1, H|1, ceil(Sq/{self.block_size}), ceil(Skv/{self.block_size}))")


@register_feature
@dataclass(frozen=True)
class Uniform(ScoreMod):
    """Context broadcasting (uniform attention): out = (1 - weight)·attention + weight·mean of the visible values.
    weight = 0.5 is the paper's 0.5·x + 0.5·mean(x); weight = 1 is pure uniform attention."""

    kind: ClassVar[str] = "uniform"
    variant_label: ClassVar[str] = "uniform"
    weight: float = 0.5

    def __post_init__(self):
        check(isinstance(self.weight, (int, float)) and math.isfinite(self.weight) and 0 <= self.weight <= 1,
              f"uniform.weight must be in [0, 1], got {self.weight!r}")
