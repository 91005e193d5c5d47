"""Reference semantics of the Attention op in numpy (float64 math) — the oracle for every backend.

Order of operations: RoPE on q and new k -> KV-cache concat -> kv-head mapping (GQA/MQA)
-> scores = scale * q kᵀ -> softcap (before or after masking, per spec) -> masks
(position window/causal, bool keep-mask, additive bias, kv lengths) -> softmax -> @ v.
A query row whose keys are all masked outputs zeros (not NaN).
Variant features (MLA, MTLA, HiLo, head mixing, ...) register a function in
`FEATURE_REFERENCES` keyed by feature kind; it replaces the plain path.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

FEATURE_REFERENCES: dict[str, Callable] = {}


def register_reference(kind: str):
    """Decorator: `fn(spec, named_inputs: dict[str, np.ndarray]) -> list[np.ndarray]` for a feature kind."""

    def deco(fn):
        FEATURE_REFERENCES[kind] = fn
        return fn

    return deco


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, style: str, rotary_dim: int) -> np.ndarray:
    """Rotate x (B, H, S, D) by cos/sin (B|1, S, rotary_dim/2)."""
    c = cos[:, None, :, :]
    s = sin[:, None, :, :]
    rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    if style == "rotate_half":
        x1, x2 = rot[..., :half], rot[..., half:]
        out = np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)
    else:  # interleaved
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        out = np.stack([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1).reshape(rot.shape)
    return np.concatenate([out, rest], axis=-1)


def position_keep_mask(mask_spec, q_len: int, kv_len: int) -> np.ndarray | None:
    """(q_len, kv_len) bool keep-mask from causal/window fields, or None when unrestricted."""
    left, right = mask_spec.window_left, mask_spec.effective_window_right
    if left is None and right is None:
        return None
    offset = kv_len - q_len if mask_spec.alignment == "bottom_right" else 0
    pos = np.arange(q_len)[:, None] + offset
    j = np.arange(kv_len)[None, :]
    keep = np.ones((q_len, kv_len), bool)
    if left is not None:
        keep &= j >= pos - left
    if right is not None:
        keep &= j <= pos + right
    return keep


def masked_softmax_attention(scores: np.ndarray, v: np.ndarray, keep: np.ndarray | None,
                             bias: np.ndarray | None = None) -> np.ndarray:
    """softmax(scores + bias over `keep`) @ v with fully masked rows -> 0. Shapes broadcast (B, H, Sq, Sk)."""
    if bias is not None:
        scores = scores + bias
    if keep is not None:
        scores = np.where(keep, scores, -np.inf)
    m = np.max(scores, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(scores - m)
    denom = p.sum(-1, keepdims=True)
    p = np.divide(p, denom, out=np.zeros_like(p), where=denom > 0)
    return p @ v


def repeat_kv(x: np.ndarray, group: int) -> np.ndarray:
    """(B, Hkv, S, D) -> (B, Hkv*group, S, D): query head h reads kv head h // group."""
    return np.repeat(x, group, axis=1) if group > 1 else x


def attention_reference(spec, named: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate an Attention op. `named` maps spec.input_names() to arrays."""
    for feat in spec.features_list():
        if feat.kind in FEATURE_REFERENCES:
            return FEATURE_REFERENCES[feat.kind](spec, named)
    out_dtype = named["query"].dtype
    f = {k: (np.asarray(a, np.float64) if np.asarray(a).dtype.kind == "f" or "bfloat" in str(np.asarray(a).dtype) else np.asarray(a))
         for k, a in named.items()}
    q, k, v = f["query"], f["key"], f["value"]
    if spec.layout == "bshd":
        q, k, v = (x.transpose(0, 2, 1, 3) for x in (q, k, v))
    if spec.rope is not None:
        q = apply_rope(q, f["rope_cos"], f["rope_sin"], spec.rope.style, spec.rope.rotary_dim)
        k = apply_rope(k, f["rope_cos"], f["rope_sin"], spec.rope.style, spec.rope.rotary_dim)
    presents = []
    if spec.kv_cache:
        pk, pv = f["past_key"], f["past_value"]
        if spec.layout == "bshd":
            pk, pv = pk.transpose(0, 2, 1, 3), pv.transpose(0, 2, 1, 3)
        k = np.concatenate([pk, k], axis=2)
        v = np.concatenate([pv, v], axis=2)
        presents = [k, v]
    out = core_attention(spec, q, k, v, f)
    if spec.layout == "bshd":
        out = out.transpose(0, 2, 1, 3)
        presents = [p.transpose(0, 2, 1, 3) for p in presents]
    return [out.astype(out_dtype)] + [p.astype(out_dtype) for p in presents]


def core_attention(spec, q: np.ndarray, k: np.ndarray, v: np.ndarray, f: dict[str, np.ndarray]) -> np.ndarray:
    """Scores, softcap, masks, softmax and PV on bhsd float64 tensors (after RoPE and cache concat)."""
    g = spec.num_heads // k.shape[1]
    k, v = repeat_kv(k, g), repeat_kv(v, g)
    scores = spec.scale * (q @ k.swapaxes(-1, -2))
    if spec.softcap and spec.softcap_order == "before_mask":
        scores = spec.softcap * np.tanh(scores / spec.softcap)
    q_len, kv_len = q.shape[2], k.shape[2]
    keep = position_keep_mask(spec.mask, q_len, kv_len)
    bias = None
    if spec.mask.input == "bool":
        m = f["mask"].astype(bool)
        keep = m if keep is None else (keep & m)
    elif spec.mask.input == "additive":
        bias = f["mask"]
    if spec.mask.kv_lengths:
        lens = f["kv_lengths"].astype(np.int64)
        valid = np.arange(kv_len)[None, :] < lens[:, None]
        valid = valid[:, None, None, :]
        keep = valid if keep is None else (keep & valid)
    if spec.softcap and spec.softcap_order == "after_mask":
        if bias is not None:
            scores = scores + bias
            bias = None
        scores = spec.softcap * np.tanh(scores / spec.softcap)
    return masked_softmax_attention(scores, v, keep, bias)
