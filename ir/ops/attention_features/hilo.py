"""HiLo attention (LITv2): high-frequency heads attend inside local windows, low-frequency heads attend to
window-average-pooled keys/values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, int_pair, out, qkv


@register_feature
@dataclass(frozen=True)
class HiLo(Feature):
    """Tokens are an `image_size` (h, w) map, row-major. Heads [0, local_heads) (Hi-Fi) attend within each
    non-overlapping `window` (wh, ww); heads [local_heads, H) (Lo-Fi) attend from every query to the K/V averaged
    over each window (pooling commutes with the linear K/V projection, so pooled K/V = projections of pooled x)."""

    kind: ClassVar[str] = "hilo"
    variant_label: ClassVar[str] = "hilo"
    image_size: tuple = (1, 1)
    window: tuple = (1, 1)
    local_heads: int = 0

    def __post_init__(self):
        int_pair("hilo", "image_size", self.image_size)
        int_pair("hilo", "window", self.window)
        for i, axis in enumerate(("height", "width")):
            check(self.image_size[i] % self.window[i] == 0,
                  f"hilo: window {axis} {self.window[i]} does not divide image {axis} {self.image_size[i]}")
        check(isinstance(self.local_heads, int) and self.local_heads >= 0, f"hilo.local_heads must be an int >= 0, got {self.local_heads!r}")

    def validate(self, spec):
        check_plain_context(self, spec)
        check(spec.mask.is_empty, "hilo: masks are not supported (vision attention)")
        check(spec.num_kv_heads == spec.num_heads, f"hilo: needs num_kv_heads == num_heads, got {spec.num_kv_heads}")
        check(self.local_heads <= spec.num_heads, f"hilo: local_heads {self.local_heads} exceeds num_heads {spec.num_heads}")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        n = self.image_size[0] * self.image_size[1]
        require(Sq == n and Skv == n, node, f"hilo: sequence lengths ({Sq}, {Skv}) must equal h*w = {n} of image_size {self.image_size}")
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)
