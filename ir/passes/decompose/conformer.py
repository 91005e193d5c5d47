"""Efficient Conformer grouped attention (reshapes around plain attention) and strided attention (a strided slice)."""
from __future__ import annotations

from . import register_decomposition
import numpy as np

from ._build import Builder, static


@register_decomposition("grouped")
def grouped(b: Builder) -> list:
    """Zero-pad S to a multiple of g (a Concat with zeros), (B, H, S, D) -> (B, S, H, D) -> (B, S/g, H, g·D) ->
    (B, H, S/g, g·D) for q/k/v (tokens grouped first, then split into heads), plain attention, regroup back, slice."""
    g = b.spec.kv_source.group_size
    q, k, v = (b.named[n] for n in ("query", "key", "value"))

    def regroup(x, n):
        B, H, S, Dx = x.shape
        pad = -static(S, f"grouped: the {n} length") % g if (not isinstance(S, int) or S % g) else 0
        if pad:
            zeros = b.const(np.zeros((static(B, "grouped: the batch"), H, pad, Dx)), f"{n}_pad_zeros")
            x = b.concat([x, zeros], 2, f"{n}_padded")
        t = b.transpose(x, (0, 2, 1, 3), f"{n}_tokens")
        return b.transpose(b.reshape(t, (B, -1, H, g * Dx), f"{n}_grouped"), (0, 2, 1, 3), f"{n}_group_heads")

    spec = b.plain_spec(head_dim=g * b.spec.head_dim, v_head_dim=g * b.spec.v_head_dim)
    o = b.attention(spec, regroup(q, "q"), regroup(k, "k"), regroup(v, "v"))
    B, H, Sq, _ = q.shape
    Sg = o.shape[2]
    t = b.reshape(b.transpose(o, (0, 2, 1, 3), "out_tokens"), (B, Sg * g, H, b.spec.v_head_dim), "ungroup")
    if not isinstance(Sq, int) or Sq != Sg * g:
        t = b.slice(t, 1, 0, static(Sq, "grouped: the query length"), label="unpad")
    return [b.transpose(t, (0, 2, 1, 3), "out_heads")]


@register_decomposition("strided")
def strided(b: Builder) -> list:
    """Only every stride-th query attends: q[:, :, ::stride] into plain attention."""
    q = b.slice(b.named["query"], 2, 0, None, b.spec.kv_source.stride, label="q_strided")
    return [b.attention(b.plain_spec(), q, b.named["key"], b.named["value"])]
