"""Gated positional self-attention as plain attention (the flash kernel runs the content softmax) blended with the
positional map times V: (gate·attn + P·V) / (gate + rowsum(P)) (the content softmax's rows sum to 1)."""
from __future__ import annotations

from . import register_decomposition
from ._build import Builder


@register_decomposition("gated_positional")
def gated_positional(b: Builder) -> list:
    spec, feat = b.spec, b.spec.score_mods[0]
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    H = spec.num_heads
    content = b.attention(b.plain_spec(), q, k, v, label="content")
    gate = b.reshape(b.named["content_gate"], (1, H, 1, 1), "gate_4d")
    pos_map = b.named["pos_attention"]
    positional = b.matmul(pos_map, b.repeat_heads(v, H // spec.num_kv_heads, "v_rep"), "positional")
    out = b.binary("add", b.binary("mul", gate, content, "gated_content"), positional, "blend")
    if feat.renormalize:
        den = b.binary("add", gate, b.reduce("sum", pos_map, (-1,), keepdims=True, label="pos_rows"), "row_sums")
        out = b.binary("div", out, den, "renormalized")
    return [out]
