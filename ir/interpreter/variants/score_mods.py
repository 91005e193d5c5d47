"""Score mods (local windows, HaloNet blocks, top-k / block sparsity, uniform context): each contributes a
keep-mask or a blend; one reference runs them all, so mods compose."""
from __future__ import annotations

import numpy as np

from ..attention_ref import masked_softmax_attention, position_keep_mask, register_reference
from ._common import as_f64, finish, softmax_attention


def window_keep(windows, q_len: int, kv_len: int, offset: int) -> np.ndarray:
    """(H, Sq, Skv): head h keeps |pos_i - j| <= windows[h] (None = all)."""
    d = np.abs(np.arange(q_len)[:, None] + offset - np.arange(kv_len)[None, :])
    return np.stack([np.ones_like(d, bool) if w is None else d <= w for w in windows])


def blocked_keep(b: int, halo: int, q_len: int, kv_len: int) -> np.ndarray:
    start = (np.arange(q_len) // b * b)[:, None]
    j = np.arange(kv_len)[None, :]
    return (j >= start - halo) & (j < start + b + halo)


def topk_keep(conn: np.ndarray, k: int) -> np.ndarray:
    """Keep the k largest connectivity scores per query row (all when k >= Skv)."""
    if k >= conn.shape[-1]:
        return np.ones(conn.shape, bool)
    kth = -np.sort(-conn, axis=-1)[..., k - 1:k]
    return conn >= kth


def block_keep(block_mask: np.ndarray, b: int, q_len: int, kv_len: int) -> np.ndarray:
    return np.repeat(np.repeat(block_mask.astype(bool), b, axis=-2), b, axis=-1)[..., :q_len, :kv_len]


def score_mod_keep(spec, f, q_len: int, kv_len: int):
    keep = None
    offset = kv_len - q_len if spec.mask.alignment == "bottom_right" else 0
    for mod in spec.score_mods:
        if mod.kind == "multi_window":
            m = window_keep(mod.windows, q_len, kv_len, offset)[None]
        elif mod.kind == "blocked_local":
            m = blocked_keep(mod.block_size, mod.halo, q_len, kv_len)
        elif mod.kind == "topk_sparse":
            m = topk_keep(f["connectivity"], mod.top_k)
        elif mod.kind == "block_sparse":
            m = block_keep(f["block_mask"], mod.block_size, q_len, kv_len)
        else:
            continue
        keep = m if keep is None else (keep & m)
    return keep


def score_mods_reference(spec, named):
    f = as_f64(named)
    q, k, v = f["query"], f["key"], f["value"]
    q_len, kv_len = q.shape[2], k.shape[2]
    keep = score_mod_keep(spec, f, q_len, kv_len)
    out = softmax_attention(spec, q, k, v, keep=keep)
    for mod in spec.score_mods:
        if mod.kind == "uniform":  # equal weights over the keys the position mask leaves visible
            g = q.shape[1] // k.shape[1]
            vv = np.repeat(v, g, axis=1)
            uni = masked_softmax_attention(np.zeros(q.shape[:3] + (kv_len,)), vv, position_keep_mask(spec.mask, q_len, kv_len))
            out = (1 - mod.weight) * out + mod.weight * uni
    return finish(out, named)


for _kind in ("multi_window", "blocked_local", "topk_sparse", "block_sparse", "uniform"):
    register_reference(_kind)(score_mods_reference)


def head_blocks_keep_bias(feat, n: int, table: np.ndarray | None):
    """(H, n, n) keep (blocked heads: same block of the (rolled) order; global heads: all) and additive bias
    (table lookup by rolled i - j on blocked heads, 0 on global heads)."""
    keep, index = feat.layout(n)
    if table is None:
        return keep, None
    rel = np.take_along_axis(table[:, None, :], index.reshape(len(table), 1, -1), axis=2).reshape(keep.shape)
    blocked = np.array([b > 0 for b in feat.block_sizes])[:, None, None]
    return keep, np.where(blocked & keep, rel, 0.0)


@register_reference("head_blocks")
def head_blocks(spec, named):
    f = as_f64(named)
    feat = spec.score_mods[0]
    q, k, v = f["query"], f["key"], f["value"]
    n = q.shape[2]
    keep, bias = head_blocks_keep_bias(feat, n, f.get("rel_pos_bias"))
    g = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    scores = spec.scale * (q @ k.swapaxes(-1, -2))
    if spec.softcap:
        scores = spec.softcap * np.tanh(scores / spec.softcap)
    pos = position_keep_mask(spec.mask, n, n)
    keep = keep if pos is None else keep & pos
    return finish(masked_softmax_attention(scores, v, keep[None], None if bias is None else bias[None]), named)
