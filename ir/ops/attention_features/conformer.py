"""Efficient Conformer attention: grouped attention (n²d -> n²d/g) and strided attention (downsampling)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, out, positive_int, qkv, static_int


@register_feature
@dataclass(frozen=True)
class Grouped(Feature):
    """Grouped attention as Burchi & Vielzeuf's code computes it (burchim/EfficientConformer, models/attentions.py):
    the model-dim token vectors are zero-padded to a multiple of g tokens, g consecutive tokens are concatenated,
    and THEN split into heads: (B, T, H·D) -> (B, T/g, g·H·D) -> (B, H, T/g, g·D). On the op's per-head inputs
    (B, H, S, D) that is: pad S, transpose to (B, S, H, D), reshape to (B, S/g, H, g·D), transpose back, so a
    grouped head mixes several original heads of one token. Attention runs over the S/g grouped tokens
    (spec.scale applies; the paper uses 1/sqrt(g·D)), masks act on grouped positions, and the output is
    regrouped the same way and sliced back to (B, H, Sq, Dv). Needs num_kv_heads == num_heads (the paper's MHA)."""

    kind: ClassVar[str] = "grouped"
    variant_label: ClassVar[str] = "grouped"
    group_size: int = 2

    def __post_init__(self):
        positive_int("grouped", "group_size", self.group_size)

    def validate(self, spec):
        check_plain_context(self, spec)
        check(spec.num_kv_heads == spec.num_heads,
              f"grouped: num_kv_heads ({spec.num_kv_heads}) must equal num_heads ({spec.num_heads}); grouped "
              "attention regroups the whole token vector into heads (Efficient Conformer is MHA)")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
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
