"""Talking-heads attention: (H, H) mixes of the logits before the softmax and of the probabilities after it."""
from __future__ import annotations

import numpy as np

from ..attention_ref import position_keep_mask, register_reference, repeat_kv
from ._common import as_f64, finish


def mix(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B, H, Sq, Skv) -> Σ_g x[:, g]·w[g, h] + b[h]."""
    return np.einsum("bgij,gh->bhij", x, w) + b[None, :, None, None]


@register_reference("talking_heads")
def talking_heads(spec, named):
    f = as_f64(named)
    feat = spec.head_mixing
    q, k, v = f["query"], f["key"], f["value"]
    g = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, g), repeat_kv(v, g)
    s = spec.scale * (q @ k.swapaxes(-1, -2))
    if spec.softcap:
        s = spec.softcap * np.tanh(s / spec.softcap)
    if feat.pre:
        s = mix(s, f["talk_pre"], f["talk_pre_bias"])
    keep = position_keep_mask(spec.mask, q.shape[2], k.shape[2])
    if spec.mask.input == "additive":
        s = s + f["mask"]
    elif spec.mask.input == "bool":
        keep = f["mask"].astype(bool) if keep is None else (keep & f["mask"].astype(bool))
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    den = e.sum(-1, keepdims=True)
    p = np.divide(e, den, out=np.zeros_like(e), where=den > 0)
    if feat.post:
        p = mix(p, f["talk_post"], f["talk_post_bias"])
    return finish(p @ v, named)
