"""repeat_kv: K/V copied per query-head group, folded into Attention.num_kv_heads.

Recognized on a 4-D (B, H, S, D) K or V:
  Reshape(Expand(x5, (B, Hkv, n, S, D)), (B, Hkv*n, S, D)) with x5 = (B, Hkv, 1, S, D)
(HF `repeat_kv`, and torch's `repeat_interleave(n, dim=1)` decomposed the same way), and
  Gather(x, indices = [0]*n + [1]*n + ..., axis=1) (repeat_interleave as index_select).
The tiling form `x.repeat(1, n, 1, 1)` (head h reads h % Hkv) is not GQA and is not folded.
"""
from __future__ import annotations

import numpy as np

from ... import dims as D
from ...graph import Value
from .common import Emitter, MatchContext, producer_kind


def unrepeat(ctx: MatchContext, em: Emitter, x: Value) -> tuple[Value, int] | None:
    """(un-repeated (B, Hkv, S, D) tensor, group n) when `x` repeats kv heads in GQA order; else None."""
    kind = producer_kind(x)
    if kind == "Reshape":
        e = x.producer.inputs[0]
        if producer_kind(e) != "Expand" or e.rank != 5:
            return None
        src = e.producer.inputs[0]
        b, hkv, n, s, d = e.shape
        if src.rank != 5 or src.shape[2] != 1 or not isinstance(n, int) or n < 2:
            return None
        if not (D.equal(src.shape[1], hkv) and D.equal(src.shape[3], s) and D.equal(src.shape[4], d)):
            return None
        if not (D.equal(x.shape[1], D.mul(hkv, n)) and D.equal(x.shape[2], s) and D.equal(x.shape[0], b)):
            return None
        if producer_kind(src) == "Reshape" and src.producer.inputs[0].rank == 4:
            base = src.producer.inputs[0]
            if D.equal(base.shape[1], src.shape[1]) and D.equal(base.shape[2], s):
                return base, n
        return em.reshape(src, (src.shape[0], src.shape[1], s, d)), n
    if kind == "Gather" and x.producer.op.axis % 4 == 1:
        data, idx = x.producer.inputs
        ind = ctx.const(idx)
        hkv = data.shape[1]
        if ind is None or ind.ndim != 1 or not isinstance(hkv, int) or len(ind) % hkv or len(ind) == hkv:
            return None
        n = len(ind) // hkv
        if np.array_equal(ind, np.repeat(np.arange(hkv), n)):
            return data, n
    return None
