"""Shared numpy pieces of the variant references (float64 math, bhsd layout)."""
from __future__ import annotations

import numpy as np

from ..attention_ref import masked_softmax_attention, position_keep_mask, repeat_kv


def as_f64(named: dict) -> dict:
    """Float inputs as float64 (exact oracle math); other dtypes unchanged."""
    out = {}
    for k, a in named.items():
        a = np.asarray(a)
        out[k] = a.astype(np.float64) if (a.dtype.kind == "f" or "bfloat" in str(a.dtype)) else a
    return out


def softmax_attention(spec, q, k, v, keep=None, use_position_mask: bool = True):
    """softmax(mask(softcap(scale q kᵀ))) v with GQA head mapping, the spec's position mask AND `keep`.

    q (B, H, Sq, D); k/v (B, Hkv, Skv, ·); keep broadcasts to (B, H, Sq, Skv). Fully masked rows give 0.
    """
    g = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, g), repeat_kv(v, g)
    scores = spec.scale * (q @ k.swapaxes(-1, -2))
    if spec.softcap:  # no additive bias reaches variants, so before/after mask coincide
        scores = spec.softcap * np.tanh(scores / spec.softcap)
    pos = position_keep_mask(spec.mask, q.shape[2], k.shape[2]) if use_position_mask else None
    if pos is not None:
        keep = pos if keep is None else (keep & pos)
    return masked_softmax_attention(scores, v, keep)


def finish(out: np.ndarray, named: dict) -> list[np.ndarray]:
    """Cast the float64 result back to the query dtype."""
    return [out.astype(np.asarray(named["query"]).dtype)]
