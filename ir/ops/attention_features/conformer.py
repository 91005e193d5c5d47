"""Efficient Conformer attention: grouped attention (n²d -> n²d/g) and strided attention (downsampling)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ... import dims as D
from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, out, positive_int, qkv, static_int


@register_feature
@dataclass(frozen=True)
class Grouped(Feature):
    """Grouped attention: each head's `group_size` consecutive tokens are concatenated along the feature axis,
    q/k/v (B, H, S, D) -> (B, H, S/g, g·D), attention runs over S/g grouped tokens (spec.scale applies; the
    paper uses 1/sqrt(g·D)), and the output is split back to (B, H, S, Dv). Masks act on grouped positions.
    S must be divisible by g (pad before the op)."""

    kind: ClassVar[str] = "grouped"
    variant_label: ClassVar[str] = "grouped"
    group_size: int = 2

    def __post_init__(self):
        positive_int("grouped", "group_size", self.group_size)

    def validate(self, spec):
        check_plain_context(self, spec)

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        for name, s in (("query", Sq), ("key", Skv)):
            try:
                D.floordiv(s, self.group_size)
            except ValueError:
                require(False, node, f"grouped: {name} length {s} is not divisible by group_size {self.group_size}; pad first")
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)


@register_feature
@dataclass(frozen=True)
class Strided(Feature):
    """Strided attention: only every `stride`-th query attends (q[:, :, ::stride]); output (B, H, ceil(Sq/stride), Dv).
    Used as a downsampling layer."""

    kind: ClassVar[str] = "strided"
    variant_label: ClassVar[str] = "strided"
    stride: int = 2

    def __post_init__(self):
        positive_int("strided", "stride", self.stride)

    def validate(self, spec):
        check_plain_context(self, spec)
        check(not spec.mask.causal and spec.mask.is_empty, "strided: masks are not supported (encoder downsampling)")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        n = static_int(Sq, node, "strided: query length")
        return out(q, B, spec.num_heads, -(-n // self.stride), spec.v_head_dim)
