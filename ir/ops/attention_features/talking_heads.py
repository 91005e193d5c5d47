"""Talking-heads attention (Shazeer et al. 2020, arXiv 2003.02436; CaiT's TalkingHeadAttn in timm): the attention
logits and/or probabilities are mixed across heads by learned (H, H) maps around the softmax."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ... import dims as D
from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, expect, out, qkv


@register_feature
@dataclass(frozen=True)
class TalkingHeads(Feature):
    """With `pre`, the logits s (B, H, Sq, Skv) = scale·q·kᵀ (after a softcap) become
    Σ_g s[:, g]·talk_pre[g, h] + talk_pre_bias[h] before the mask and softmax; with `post`, the probabilities p become
    Σ_g p[:, g]·talk_post[g, h] + talk_post_bias[h] (over every key, masked ones too) before p·v. The maps are
    (H_in, H_out) as torch's Linear(H, H) weight transposed (timm: proj_l / proj_w over the head axis)."""

    kind: ClassVar[str] = "talking_heads"
    variant_label: ClassVar[str] = "talking-heads"
    pre: bool = True
    post: bool = True

    def __post_init__(self):
        check(isinstance(self.pre, bool) and isinstance(self.post, bool) and (self.pre or self.post),
              f"talking_heads: pre/post must be bools, at least one True (got pre={self.pre!r}, post={self.post!r})")

    def extra_inputs(self):
        return (("talk_pre", "talk_pre_bias") if self.pre else ()) + (("talk_post", "talk_post_bias") if self.post else ())

    def validate(self, spec):
        check_plain_context(self, spec, allow_mask_tensor=True)
        check(not spec.mask.kv_lengths, "talking_heads: kv_lengths is not supported; use a mask input")
        check(spec.softcap is None or spec.softcap_order == "before_mask",
              "talking_heads: a softcap after the mask is not supported")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        H = spec.num_heads
        for name in self.extra_inputs():
            shape = (H,) if name.endswith("_bias") else (H, H)
            expect(t, name, node, True, shape, f"{shape} (heads = {H})")
        if spec.mask.input != "none":
            m = t["mask"]
            require(m.rank == 4 and all(D.equal(a, 1) or D.equal(a, b) for a, b in zip(m.shape, (B, H, Sq, Skv))),
                    node, f"talking_heads: mask {m} does not broadcast to (B, H, Sq, Skv) = {(B, H, Sq, Skv)}")
        return out(q, B, H, Sq, spec.v_head_dim)
