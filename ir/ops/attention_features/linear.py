"""Linear attention: the ONNX LinearAttention recurrences (linear / gated / delta / gated_delta) and the
kernelized form of Katharopoulos et al. (feature map + normalizer)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, expect, out, qkv

UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")
FEATURE_MAPS = ("identity", "elu_plus_one", "key_softmax")


@register_feature
@dataclass(frozen=True)
class LinearAttn(Feature):
    """State S_t (Dk x Dv) per kv head, S_0 = 0, with g_t = decay (log space), β_t = beta:
    linear S_t = S_{t-1} + k_t v_tᵀ; gated S_t = e^{g_t} S_{t-1} + k_t v_tᵀ;
    delta S_t = S_{t-1} + β_t k_t (v_t - S_{t-1}ᵀ k_t)ᵀ; gated_delta uses e^{g_t} S_{t-1} in both places.
    o_t = scale · φ(q_t)ᵀ S_t (φ = feature_map, applied to q and k). normalize (linear rule only) divides by
    φ(q_t)ᵀ Σ_{u<=t} φ(k_u). Causal mask = the recurrence; without it (linear rule only) every query sees S_T.
    feature_map "key_softmax" (CoaT's factorized attention): φ(q) = q, φ(k) = softmax of k over the sequence
    (each channel over all tokens), non-causal linear rule only: o = scale · q (softmax_N(k)ᵀ v)."""

    kind: ClassVar[str] = "linear"
    variant_label: ClassVar[str] = "linear"
    update_rule: str = "linear"
    feature_map: str = "identity"
    normalize: bool = False

    def __post_init__(self):
        check(self.update_rule in UPDATE_RULES, f"linear.update_rule {self.update_rule!r} not in {UPDATE_RULES}")
        check(self.feature_map in FEATURE_MAPS, f"linear.feature_map {self.feature_map!r} not in {FEATURE_MAPS}")
        check(not self.normalize or self.update_rule == "linear", "linear.normalize needs update_rule='linear'")
        check(self.feature_map != "key_softmax" or (self.update_rule == "linear" and not self.normalize),
              "linear.feature_map 'key_softmax' (softmax over all tokens) needs update_rule='linear', normalize=False")

    def extra_inputs(self):
        return {"linear": (), "gated": ("decay",), "delta": ("beta",), "gated_delta": ("decay", "beta")}[self.update_rule]

    def validate(self, spec):
        check_plain_context(self, spec)
        m = spec.mask
        check(m.window_left is None and m.window_right is None, "linear: windows are not supported")
        check(m.causal or self.update_rule == "linear", f"linear: update_rule {self.update_rule!r} is recurrent; set mask.causal")
        check(not (m.causal and self.feature_map == "key_softmax"),
              "linear: feature_map 'key_softmax' normalizes over every token, so it cannot be causal")
        check(spec.softcap is None, "linear: softcap has no meaning without softmax")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        require(Sq == Skv, node, f"linear: query and key lengths must match, got {Sq} vs {Skv}")
        for name in self.extra_inputs():
            expect(t, name, node, True, (B, spec.num_kv_heads, Skv), f"(B, Hkv, S) = ({B}, {spec.num_kv_heads}, {Skv})")
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)
