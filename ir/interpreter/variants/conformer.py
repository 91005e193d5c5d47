"""Efficient Conformer grouped and strided attention."""
from __future__ import annotations

import numpy as np

from ..attention_ref import register_reference
from ._common import as_f64, finish, softmax_attention


def group_tokens(x, g: int):
    """(B, H, S, D) -> (B, H, ceil(S/g), g·D): zero-pad S to a multiple of g, concatenate g consecutive token
    vectors (all heads), then split the result into H heads (the authors' order: group first, heads second)."""
    B, H, S, D = x.shape
    pad = -S % g
    x = np.concatenate([x, np.zeros((B, H, pad, D), x.dtype)], axis=2) if pad else x
    return x.transpose(0, 2, 1, 3).reshape(B, (S + pad) // g, H, g * D).transpose(0, 2, 1, 3)


def ungroup_tokens(o, g: int, S: int):
    """Inverse of group_tokens for the output: (B, H, S'/g, g·Dv) -> (B, H, S, Dv) (padding sliced off)."""
    B, H, Sg, GD = o.shape
    return o.transpose(0, 2, 1, 3).reshape(B, Sg * g, H, GD // g)[:, :S].transpose(0, 2, 1, 3)


@register_reference("grouped")
def grouped(spec, named):
    f = as_f64(named)
    g = spec.kv_source.group_size
    q, k, v = (group_tokens(f[n], g) for n in ("query", "key", "value"))
    o = softmax_attention(spec, q, k, v)                      # (B, H, ceil(Sq/g), g·Dv)
    return finish(ungroup_tokens(o, g, f["query"].shape[2]), named)


@register_reference("strided")
def strided(spec, named):
    f = as_f64(named)
    s = spec.kv_source.stride
    return finish(softmax_attention(spec, f["query"][:, :, ::s], f["key"], f["value"]), named)
