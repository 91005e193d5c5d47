"""ConvShareViT: MHSA whose q/k/v linear layers are depthwise convolutions sharing one kernel across channels."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, expect, int_pair, out, qkv


@register_feature
@dataclass(frozen=True)
class ConvShare(Feature):
    """q/k/v (B, H, h·w, D) are channel maps over an `image_size` (h, w) grid (row-major tokens). Each of q, k, v
    is convolved with its own 2-D kernel conv_q/conv_k/conv_v (kh, kw), shared by every channel (depthwise,
    shared weights), with valid padding (cross-correlation, as torch conv2d), giving (h-kh+1)·(w-kw+1) tokens
    over which plain softmax attention runs. Output (B, H, (h-kh+1)(w-kw+1), Dv)."""

    kind: ClassVar[str] = "conv_share"
    variant_label: ClassVar[str] = "convshare"
    image_size: tuple = (1, 1)
    kernel_size: tuple = (1, 1)

    def __post_init__(self):
        int_pair("conv_share", "image_size", self.image_size)
        int_pair("conv_share", "kernel_size", self.kernel_size)
        check(all(k <= s for k, s in zip(self.kernel_size, self.image_size)),
              f"conv_share: kernel {self.kernel_size} larger than image {self.image_size} (valid padding)")

    @property
    def out_tokens(self) -> int:
        return (self.image_size[0] - self.kernel_size[0] + 1) * (self.image_size[1] - self.kernel_size[1] + 1)

    def extra_inputs(self):
        return ("conv_q", "conv_k", "conv_v")

    def validate(self, spec):
        check_plain_context(self, spec)
        check(spec.mask.is_empty, "conv_share: masks are not supported (vision attention)")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        n = self.image_size[0] * self.image_size[1]
        require(Sq == n and Skv == n, node, f"conv_share: sequence lengths ({Sq}, {Skv}) must equal h*w = {n}")
        for name in self.extra_inputs():
            expect(t, name, node, True, self.kernel_size, f"a {self.kernel_size} kernel")
        return out(q, B, spec.num_heads, self.out_tokens, spec.v_head_dim)
