"""HiLo attention (LITv2)."""
from __future__ import annotations

import math

from ..ir.ops import AttentionSpec
from ..ir.ops.attention_features import HiLo
from ._base import check
from ._projected import ProjectedAttention


class HiLoAttention(ProjectedAttention):
    """HiLo attention ("Fast Vision Transformers with HiLo Attention", Pan et al. 2022): the first `local_heads`
    heads (Hi-Fi) attend inside non-overlapping `window` windows of the `image_size` token map; the other heads
    (Lo-Fi) attend from every token to keys/values average-pooled over each window. x: (B, h·w, E) row-major."""

    def __init__(self, embed_dim: int, num_heads: int, image_size: tuple[int, int], window: tuple[int, int] | int,
                 local_heads: int):
        super().__init__(embed_dim, num_heads)
        window = (window, window) if isinstance(window, int) else tuple(window)
        check(0 <= local_heads <= num_heads, f"local_heads must be in [0, {num_heads}], got {local_heads}")
        feat = HiLo(tuple(image_size), window, local_heads)  # raises when the window does not divide the image
        self.spec = AttentionSpec(num_heads, num_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim), kv_source=feat)
