"""Efficient Conformer grouped and strided attention."""
from __future__ import annotations

from ..attention_ref import register_reference
from ._common import as_f64, finish, softmax_attention


def group_tokens(x, g: int):
    """(B, H, S, D) -> (B, H, S/g, g·D): g consecutive tokens concatenated along features."""
    B, H, S, D = x.shape
    return x.reshape(B, H, S // g, g * D)


@register_reference("grouped")
def grouped(spec, named):
    f = as_f64(named)
    g = spec.kv_source.group_size
    q, k, v = (group_tokens(f[n], g) for n in ("query", "key", "value"))
    o = softmax_attention(spec, q, k, v)                      # (B, H, Sq/g, g·Dv)
    B, H, Sg, GD = o.shape
    return finish(o.reshape(B, H, Sg * g, GD // g), named)


@register_reference("strided")
def strided(spec, named):
    f = as_f64(named)
    s = spec.kv_source.stride
    return finish(softmax_attention(spec, f["query"][:, :, ::s], f["key"], f["value"]), named)
