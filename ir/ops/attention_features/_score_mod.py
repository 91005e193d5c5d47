"""Base for score mods: features that only restrict or blend the attention weights, and so compose."""
from __future__ import annotations

from dataclasses import dataclass

from ..attention_spec import Feature
from ._common import check_plain_context, out, qkv


@dataclass(frozen=True)
class ScoreMod(Feature):
    """A score mod keeps the plain q/k/v shapes; several may sit in `spec.score_mods` together."""

    is_score_mod = True

    def validate(self, spec):
        check_plain_context(self, spec)

    def check_inputs(self, spec, t, node, B, Sq, Skv) -> None:
        """Check this mod's extra inputs (none by default)."""

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        for mod in spec.score_mods:
            mod.check_inputs(spec, t, node, B, Sq, Skv)
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)
