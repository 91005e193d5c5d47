"""Gated positional self-attention (d'Ascoli et al., ICML 2021, ConViT's GPSA): each head blends its content softmax
with a positional attention map by a learned gate."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ... import dims as D
from ...errors import require
from ..attention_spec import register_feature
from ._common import check, check_plain_context, expect
from ._score_mod import ScoreMod


@register_feature
@dataclass(frozen=True)
class GatedPositional(ScoreMod):
    """out = A·v with A = content_gate[h]·softmax(scale·q·kᵀ) + pos_attention (1|B, H, Sq, Skv), divided by its row
    sums when `renormalize`. ConViT: content_gate = 1 - σ(g_h), pos_attention = σ(g_h)·softmax(pos_proj(r_ij)) (the
    positional softmax does not depend on the input: a constant for a static token count). The only score mod of
    its op; no mask tensor."""

    kind: ClassVar[str] = "gated_positional"
    variant_label: ClassVar[str] = "gated-positional"
    renormalize: bool = True

    def __post_init__(self):
        check(isinstance(self.renormalize, bool), f"gated_positional.renormalize must be a bool, got {self.renormalize!r}")

    def extra_inputs(self):
        return ("content_gate", "pos_attention")

    def validate(self, spec):
        check_plain_context(self, spec)
        check(spec.score_mods == (self,), "gated_positional cannot be combined with other score mods")

    def check_inputs(self, spec, t, node, B, Sq, Skv) -> None:
        H = spec.num_heads
        expect(t, "content_gate", node, True, (H,), f"({H},) (one gate per head)")
        p = t["pos_attention"]
        require(p.rank == 4 and p.is_float and all(D.equal(a, b) or (i == 0 and D.equal(a, 1))
                                                    for i, (a, b) in enumerate(zip(p.shape, (B, H, Sq, Skv)))), node,
                f"pos_attention must be float (B|1, H, Sq, Skv) = ({B}|1, {H}, {Sq}, {Skv}), got {p}")
