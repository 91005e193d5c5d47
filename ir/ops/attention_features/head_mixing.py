"""Head mixing: mixture-of-heads routing (MoH / MoA), knocking-heads cross-head projections, CHAI clusters."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..attention_spec import Feature, register_feature
from ._common import check, check_plain_context, expect, out, positive_int, qkv

KNOCK_TARGETS = ("q", "k", "v")
MOH_ROUTERS = ("fixed", "moh")


@register_feature
@dataclass(frozen=True)
class MoH(Feature):
    """Mixture-of-heads over `head_logits` (B, Sq, H); the first `shared_heads` heads are shared, the rest routed.
    The top_k routed heads with the highest logits get softmax weights over those k logits, the others 0.

    routers="fixed": shared heads weigh 1, routed heads their top-k softmax.
    routers="moh" (Jin et al. 2024, SkyworkAI/MoH's MoHAttention): shared heads weigh
    2·b0·shared_heads·softmax(shared logits), routed heads 2·b1·top_k·(top-k softmax), with (b0, b1) =
    softmax(balance_logits (B, Sq, 2)) the shared-vs-routed balancing router (input only when shared_heads > 0).
    The weighted head outputs feed the output projection (their weighted sum)."""

    kind: ClassVar[str] = "moh"
    variant_label: ClassVar[str] = "moh"
    top_k: int = 1
    shared_heads: int = 0
    routers: str = "fixed"

    def __post_init__(self):
        positive_int("moh", "top_k", self.top_k)
        check(isinstance(self.shared_heads, int) and self.shared_heads >= 0, f"moh.shared_heads must be an int >= 0, got {self.shared_heads!r}")
        check(self.routers in MOH_ROUTERS, f"moh.routers {self.routers!r} not in {MOH_ROUTERS}")

    @property
    def balanced(self) -> bool:
        """Whether the shared-vs-routed balancing router (balance_logits input) is used."""
        return self.routers == "moh" and self.shared_heads > 0

    def extra_inputs(self):
        return ("head_logits", "balance_logits") if self.balanced else ("head_logits",)

    def validate(self, spec):
        check_plain_context(self, spec)
        routed = spec.num_heads - self.shared_heads
        check(1 <= self.top_k <= routed, f"moh: top_k {self.top_k} must be in [1, {routed}] (num_heads - shared_heads)")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        expect(t, "head_logits", node, True, (B, Sq, spec.num_heads), f"(B, Sq, H) = ({B}, {Sq}, {spec.num_heads})")
        if self.balanced:
            expect(t, "balance_logits", node, True, (B, Sq, 2), f"(B, Sq, 2) = ({B}, {Sq}, 2)")
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)


@register_feature
@dataclass(frozen=True)
class KnockingHeads(Feature):
    """Knocking-heads attention: before SDPA, each target x in `targets` is mixed across heads by a shared
    matrix M (heads x heads, diagonal-initialized in training): x'_h = Σ_j M[h, j] x_j."""

    kind: ClassVar[str] = "knocking_heads"
    variant_label: ClassVar[str] = None  # keeps the mha/gqa label: it is an add-on to any head layout
    targets: tuple = ("k", "v")

    def __post_init__(self):
        check(isinstance(self.targets, tuple) and len(self.targets) > 0 and len(set(self.targets)) == len(self.targets)
              and all(x in KNOCK_TARGETS for x in self.targets),
              f"knocking_heads.targets must be a non-empty subset of {KNOCK_TARGETS}, got {self.targets!r}")

    def extra_inputs(self):
        return tuple(f"knock_{x}" for x in KNOCK_TARGETS if x in self.targets)

    def validate(self, spec):
        check_plain_context(self, spec)

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        for x in self.targets:
            h = spec.num_heads if x == "q" else spec.num_kv_heads
            expect(t, f"knock_{x}", node, True, (h, h), f"({h}, {h}) head-mixing matrix")
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)


@register_feature
@dataclass(frozen=True)
class CHAI(Feature):
    """Clustered head attention: `clusters[h]` is head h's cluster id; the first head of each cluster computes
    the attention probabilities softmax(scale q kᵀ) and every head of the cluster applies them to its own V.
    Keys of non-representative heads are never read (their K cache can be dropped).

    `online_probe` = p > 0 records that the clusters were found at run time as the authors do (CHAI online:
    average-linkage clustering of the heads' probabilities over the first p prompt tokens, batch 1, once per
    request; attncc.nn.ClusteredHeadAttention(num_clusters=...)): `clusters` is the assignment in effect, and
    the cost model adds the probe and the host-side clustering to a prefill. 0 = static (offline) clusters."""

    kind: ClassVar[str] = "chai"
    variant_label: ClassVar[str] = "chai"
    clusters: tuple = ()
    online_probe: int = 0

    def __post_init__(self):
        check(isinstance(self.clusters, tuple) and len(self.clusters) > 0 and all(isinstance(c, int) and c >= 0 for c in self.clusters),
              f"chai.clusters must be a non-empty tuple of ints >= 0 (cluster id per head), got {self.clusters!r}")
        check(isinstance(self.online_probe, int) and not isinstance(self.online_probe, bool) and self.online_probe >= 0,
              f"chai.online_probe must be an int >= 0 (0 = static clusters), got {self.online_probe!r}")

    @property
    def representatives(self) -> tuple[int, ...]:
        """For each head, the head whose scores it uses (the first head of its cluster)."""
        first: dict[int, int] = {}
        return tuple(first.setdefault(c, h) for h, c in enumerate(self.clusters))

    def validate(self, spec):
        check_plain_context(self, spec)
        check(len(self.clusters) == spec.num_heads, f"chai: {len(self.clusters)} cluster ids for {spec.num_heads} heads")
        check(spec.num_kv_heads == spec.num_heads, f"chai: needs num_kv_heads == num_heads, got {spec.num_kv_heads}")

    def infer(self, spec, t, node):
        q, k, v, B, Sq, Skv = qkv(spec, t, node)
        return out(q, B, spec.num_heads, Sq, spec.v_head_dim)
