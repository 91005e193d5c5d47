"""Efficient Conformer grouped attention (reshapes around plain attention) and strided attention (a strided slice)."""
from __future__ import annotations

from . import register_decomposition
from ._build import Builder


@register_decomposition("grouped")
def grouped(b: Builder) -> list:
    """(B, H, S, D) -> (B, H, S/g, g·D) for q/k/v (a view), plain attention over S/g tokens, split back."""
    g = b.spec.kv_source.group_size
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    grouped_ = [b.reshape(x, (x.shape[0], x.shape[1], -1, g * x.shape[3]), f"{n}_grouped")
                for n, x in (("q", q), ("k", k), ("v", v))]
    spec = b.plain_spec(head_dim=g * b.spec.head_dim, v_head_dim=g * b.spec.v_head_dim)
    o = b.attention(spec, *grouped_)
    return [b.reshape(o, (q.shape[0], q.shape[1], q.shape[2], b.spec.v_head_dim), "ungroup")]


@register_decomposition("strided")
def strided(b: Builder) -> list:
    """Only every stride-th query attends: q[:, :, ::stride] into plain attention."""
    q = b.slice(b.named["query"], 2, 0, None, b.spec.kv_source.stride, label="q_strided")
    return [b.attention(b.plain_spec(), q, b.named["key"], b.named["value"])]
