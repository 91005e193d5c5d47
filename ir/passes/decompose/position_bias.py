"""Position-bias score mods (alibi, bucketed_bias, window_bias) as an additive mask around plain attention.

ALiBi: the (H, 1, 1) slopes times the constant (Sq, Skv) relative positions; tables: one Gather of the flat
(H·entries) table at the rule's constant index (+ h·entries per head). The bias is added to the op's own mask
input (a bool one becomes -inf where hidden). Static lengths only (the index is a constant)."""
from __future__ import annotations

import numpy as np

from ...ops.attention_features.position_bias import relative_positions
from . import register_decomposition
from ._build import Builder, static, with_mask


def bias_value(b: Builder, q_len: int, kv_len: int):
    """(1, H, Sq, Skv) bias value of the node's position-bias mod."""
    spec = b.spec
    mod, H = spec.score_mods[0], spec.num_heads
    if mod.kind == "alibi":
        from ...ops.attention_features.position_bias import alibi_slopes
        slopes = b.const(alibi_slopes(H, mod.max_bias).reshape(1, H, 1, 1), "alibi_slopes")
        rel = b.const(relative_positions(q_len, kv_len, spec.mask.alignment).astype(np.float64)[None, None],
                      "alibi_distance")
        return b.binary("mul", slopes, rel, "alibi_bias")
    n = mod.entries()
    flat = b.reshape(b.named["rel_table"], (H * n,), "rel_table_flat")
    index = mod.index(q_len, kv_len, spec.mask.alignment)[None] + (np.arange(H) * n)[:, None, None]
    return b.reshape(b.gather(flat, index, 0, "rel_bias"), (1, H, q_len, kv_len), "rel_bias_4d")


@register_decomposition("alibi", "bucketed_bias", "window_bias")
def position_bias(b: Builder) -> list:
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    q_len = static(q.shape[2], f"{b.spec.score_mods[0].kind}: query length")
    kv_len = static(k.shape[2], f"{b.spec.score_mods[0].kind}: key length")
    bias = bias_value(b, q_len, kv_len)
    kind = b.spec.mask.input
    if kind == "additive":
        bias = b.binary("add", bias, b.named["mask"], "bias_plus_mask")
    elif kind == "bool":
        bias = b.where(b.named["mask"], bias, b.scalar(-np.inf, "neg_inf"), "bias_keep")
    if bias.dtype != q.dtype:
        bias = b.cast(bias, q.dtype, "bias_cast")
    return [b.attention(with_mask(b.plain_spec(), input="additive"), q, k, v, bias)]
