"""Linear attention recurrences (ONNX LinearAttention rules) and the kernelized normalized form."""
from __future__ import annotations

import numpy as np

from ..attention_ref import register_reference, repeat_kv
from ._common import as_f64, finish


def feature_map(x: np.ndarray, name: str, is_key: bool = False) -> np.ndarray:
    if name == "key_softmax":   # keys: softmax over the tokens (axis 2) per channel; queries unchanged
        if not is_key:
            return x
        e = np.exp(x - x.max(axis=2, keepdims=True))
        return e / e.sum(axis=2, keepdims=True)
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0))) if name == "elu_plus_one" else x


@register_reference("linear")
def linear(spec, named):
    f = as_f64(named)
    feat = spec.kv_source
    g = spec.num_heads // spec.num_kv_heads
    q = feature_map(f["query"], feat.feature_map)
    k = repeat_kv(feature_map(f["key"], feat.feature_map, is_key=True), g)   # a kv head's state is shared by its query heads
    v = repeat_kv(f["value"], g)
    B, H, S, Dk = q.shape
    if not spec.mask.causal:  # global (non-causal) linear attention: every query reads the full sum
        state = np.einsum("bhsk,bhsv->bhkv", k, v)
        out = spec.scale * np.einsum("bhsk,bhkv->bhsv", q, state)
        if feat.normalize:
            out = out / (spec.scale * np.einsum("bhsk,bhk->bhs", q, k.sum(2)))[..., None]
        return finish(out, named)
    decay = np.exp(np.repeat(f["decay"], g, axis=1)) if "decay" in f else None
    beta = np.repeat(f["beta"], g, axis=1) if "beta" in f else None
    state = np.zeros((B, H, Dk, v.shape[-1]))
    ksum = np.zeros((B, H, Dk))
    out = np.empty((B, H, S, v.shape[-1]))
    for t in range(S):
        kt, vt = k[:, :, t], v[:, :, t]
        if decay is not None:
            state = decay[:, :, t, None, None] * state
        if beta is not None:  # delta rule: write β (v - Sᵀk) along k
            pred = np.einsum("bhkv,bhk->bhv", state, kt)
            state = state + beta[:, :, t, None, None] * np.einsum("bhk,bhv->bhkv", kt, vt - pred)
        else:
            state = state + np.einsum("bhk,bhv->bhkv", kt, vt)
        out[:, :, t] = spec.scale * np.einsum("bhk,bhkv->bhv", q[:, :, t], state)
        if feat.normalize:
            ksum = ksum + kt
            out[:, :, t] /= spec.scale * np.einsum("bhk,bhk->bh", q[:, :, t], ksum)[..., None]
    return finish(out, named)
