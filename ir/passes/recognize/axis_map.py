"""Batch axes of the score MatMuls -> the Attention op's (batch, heads) and back.

The q·kᵀ MatMul batches over the leading axes β of the scores. Supported arrangements:
  ()         plain 2-D attention              -> batch 1, 1 head
  (N,)       3-D (B*H, S, D) tensors         -> (B, H) split read from the reshape that merged them,
                                                 else batch 1 x N heads when N is a number
  (B, H)     4-D bhsd                          -> as is
  (B, X, G)  5-D grouped (B, Hkv, G, S, D)    -> heads X*G, query head x*G+g
K/V head axes must be a prefix of the query's head axes followed by size-1 axes (so query head h
reads kv head h // group, the GQA rule); anything else (e.g. kv heads on the inner axis) is refused.
"""
from __future__ import annotations

from dataclasses import dataclass

from ... import dims as D
from ...graph import Value
from .common import Emitter, need, producer_kind, same_shape


@dataclass
class BatchPlan:
    """How the score batch axes β map to (batch, heads)."""

    beta: tuple
    batch: D.Dim
    heads: int

    def _bh(self, axes: tuple) -> tuple:
        """(batch, heads) of a tensor whose batch axes `axes` broadcast against β."""
        r = len(self.beta)
        if r == 0:
            return 1, 1
        if r == 1:
            return (1, 1) if axes[0] == 1 else (self.batch, self.heads)
        heads = D.product(axes[1:])
        return axes[0], heads

    def kv_heads(self, axes: tuple) -> int:
        """Kv heads of K/V with batch axes `axes`; NotAttention when they do not follow the GQA rule."""
        r = len(self.beta)
        if r <= 1:
            need(r == 0 or axes[0] == 1 or D.equal(axes[0], self.beta[0]), f"K/V batch axes {axes} do not match {self.beta}")
            return 1 if r == 1 and axes[0] == 1 else self.heads
        head_axes, q_axes = axes[1:], self.beta[1:]
        k = 0
        while k < len(q_axes) and D.equal(head_axes[k], q_axes[k]) and not (head_axes[k] == 1 and q_axes[k] != 1):
            k += 1
        need(all(d == 1 for d in head_axes[k:]),
             f"K/V head axes {head_axes} against query head axes {q_axes} do not give query head h -> kv head h // group")
        kvh = D.product(head_axes)
        need(isinstance(kvh, int), f"K/V head count {kvh} is not a number")
        return kvh

    def to_bhsd(self, em: Emitter, x: Value, heads: int | None = None) -> Value:
        """Reshape/expand a q/k/v/mask tensor (β' + trailing 2 axes) to 4-D (batch, heads, s, d)."""
        r = len(self.beta)
        if x.rank < r + 2:
            x = em.reshape(x, (1,) * (r + 2 - x.rank) + tuple(x.shape))
        axes = tuple(x.shape[:r])
        b, h = self._bh(axes)
        if heads is not None and r >= 2 and not D.equal(h, heads) and h != 1:
            # a mask with partial head broadcast: materialize the head axes before merging them
            x = em.expand(x, (axes[0],) + tuple(self.beta[1:]) + tuple(x.shape[r:]))
            h = self.heads
        return em.reshape(x, (b, h) + tuple(x.shape[r:]))

    def expand_batch(self, em: Emitter, x: Value) -> Value:
        """Broadcast a 4-D K/V tensor's batch axis to the query batch (Attention needs equal batches)."""
        if D.equal(x.shape[0], self.batch):
            return x
        return em.expand(x, (self.batch,) + tuple(x.shape[1:]))


def _split_flat(q: Value, n: D.Dim) -> tuple[D.Dim, int]:
    """(B, H) for a merged (B*H) axis: from the Reshape that merged a 4-D tensor, else (1, N)."""
    v = q
    for _ in range(4):  # look through scale/cast on q
        kind = producer_kind(v)
        if kind == "Reshape":
            src = v.producer.inputs[0]
            if src.rank == 4 and isinstance(src.shape[1], int) and D.equal(D.mul(src.shape[0], src.shape[1]), n):
                return src.shape[0], src.shape[1]
            break
        if kind in ("Cast", "Binary"):
            v = v.producer.inputs[0]
            continue
        break
    need(isinstance(n, int), f"cannot tell batch from heads in the merged (B*H) axis {n}")
    return 1, n


def plan_batch(scores: Value, q: Value, k: Value, v: Value) -> BatchPlan:
    """The batch plan for scores β + (Sq, Skv) from q β + (Sq, D), k β_k + (Skv, D), v β_k + (Skv, Dv)."""
    r = scores.rank - 2
    need(q.rank == k.rank == v.rank == scores.rank, f"q/k/v ranks {q.rank}/{k.rank}/{v.rank} differ from the scores rank {scores.rank}")
    need(r <= 3, f"{r} batch axes on the scores; supported: 0 to 3 ((B*H), (B, H), (B, Hkv, G))")
    beta = tuple(scores.shape[:r])
    need(same_shape(q.shape[:r], beta), f"query batch axes {q.shape[:r]} are broadcast against the scores {beta}")
    need(same_shape(k.shape[:r], v.shape[:r]), f"key batch axes {k.shape[:r]} differ from value batch axes {v.shape[:r]}")
    if r == 0:
        return BatchPlan(beta, 1, 1)
    if r == 1:
        b, h = _split_flat(q, beta[0])
        return BatchPlan(beta, b, h)
    heads = D.product(beta[1:])
    need(isinstance(heads, int), f"query head count {heads} is not a number")
    return BatchPlan(beta, beta[0], heads)
