"""Latent KV sources: MLA (DeepSeek-V2/V3) and MTLA (Multi-head Temporal Latent Attention)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import require
from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, expect, out, positive_int, qkv


@register_feature
@dataclass(frozen=True)
class MLA(Feature):
    """Multi-head latent attention: K/V are up-projections of a shared compressed latent plus a decoupled RoPE key.

    Inputs: query (B, H, Sq, nope+rope) with its last `rope_dim` channels already rotated; key = the KV-cache
    entry (B, 1, Skv, latent+rope) = [c_kv | rotated k_pe]; value = c_kv (B, 1, Skv, latent);
    w_uk (latent, H, nope), w_uv (latent, H, Dv). `absorbed` picks the computation order only:
    naive expands k_h = [c W_uk_h | k_pe], v_h = c W_uv_h (MHA with D = nope+rope);
    absorbed folds W_uk into q and W_uv into the output (MQA over the latent, D = latent+rope).
    Both are equal; a pass may flip the flag. nope = head_dim - rope_dim.
    """

    kind: ClassVar[str] = "mla"
    variant_label: ClassVar[str] = "mla"
    latent_dim: int = 0
    rope_dim: int = 0
    absorbed: bool = False

    def __post_init__(self):
        positive_int("mla", "latent_dim", self.latent_dim)
        check(isinstance(self.rope_dim, int) and self.rope_dim >= 0, f"mla.rope_dim must be an int >= 0, got {self.rope_dim!r}")
        check(isinstance(self.absorbed, bool), f"mla.absorbed must be a bool, got {self.absorbed!r}")

    @property
    def kv_cache_per_token(self) -> int:
        """Elements cached per token per layer: the latent plus the shared RoPE key (all heads share them)."""
        return self.latent_dim + self.rope_dim

    def extra_inputs(self):
        return ("w_uk", "w_uv")

    def validate(self, spec):
        check_plain_context(self, spec)
        check(spec.num_kv_heads == 1, f"mla: num_kv_heads must be 1 (one shared latent), got {spec.num_kv_heads}")
        check(spec.head_dim > self.rope_dim, f"mla: head_dim ({spec.head_dim}) must exceed rope_dim ({self.rope_dim})")

    def infer(self, spec, t, node):
        nope = spec.head_dim - self.rope_dim
        q, k, v, B, Sq, Skv = qkv(spec, t, node, k_heads=1, k_dim=self.kv_cache_per_token, v_heads=1, v_dim=self.latent_dim)
        H = spec.num_heads
        expect(t, "w_uk", node, True, (self.latent_dim, H, nope), f"(latent, H, nope) = ({self.latent_dim}, {H}, {nope})")
        expect(t, "w_uv", node, True, (self.latent_dim, H, spec.v_head_dim),
               f"(latent, H, Dv) = ({self.latent_dim}, {H}, {spec.v_head_dim})")
        return out(q, B, H, Sq, spec.v_head_dim)


@register_feature
@dataclass(frozen=True)
class MTLA(Feature):
    """Multi-head temporal latent attention: KV merged over time in chunks of `stride` tokens.

    Inputs: per-token query/key/value (B, H|Hkv, S, D) (key/value are the up-projected latents; the merge
    commutes with the linear up-projection) and merge_weights (B, S) from the hyper-network.
    The merged KV after token t is m_t = Σ_{u in chunk(t), u <= t} w_u kv_u. Query i sees m_t for every t <= i
    that ends a chunk ((t+1) % stride == 0) and its own partial chunk m_i: the stride-aware causal mask that
    makes parallel training equal to decoding with a cache of ceil(S/stride) merged entries.
    `rope_dim` > 0: the key's last rope_dim channels are the decoupled RoPE key k_pe (Deng & Woodland's MTLA,
    as MLA): they are NOT merged; entry t keeps token t's own k_pe (the decoding cache overwrites it per token).
    """

    kind: ClassVar[str] = "mtla"
    variant_label: ClassVar[str] = "mtla"
    stride: int = 2
    rope_dim: int = 0

    def __post_init__(self):
        positive_int("mtla", "stride", self.stride)
        check(isinstance(self.rope_dim, int) and not isinstance(self.rope_dim, bool) and self.rope_dim >= 0,
              f"mtla.rope_dim must be an int >= 0, got {self.rope_dim!r}")

    def extra_inputs(self):
        return ("merge_weights",)

    def validate(self, spec):
        check_plain_context(self, spec)
        m = spec.mask
        check(m.causal and m.window_left is None and m.window_right is None,
              "mtla: mask must be causal (the stride-aware causal mask) with no window")
        check(self.rope_dim < spec.head_dim, f"mtla: rope_dim ({self.rope_dim}) must be below head_dim ({spec.head_dim})")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        require(Sq == Skv, node, f"mtla: query and key lengths must match (self-attention), got {Sq} vs {Skv}")
        expect(t, "merge_weights", node, True, (B, Skv), f"(B, S) = ({B}, {Skv})")
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)
