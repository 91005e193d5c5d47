"""Score mods as masks and blends around plain attention. Position-only mods (multi_window, blocked_local) become
constant keep-masks (one shared window becomes the op's own window fields, which the kernels skip by block);
data-dependent ones are computed with IR ops: top-k by counting larger connectivity scores, block masks by
gathering block rows/columns. All keep-masks are ANDed into one bool mask input. Uniform blends the result with
the mean of the V the position mask leaves visible."""
from __future__ import annotations

import numpy as np

from ...interpreter.attention_ref import position_keep_mask
from . import register_decomposition
from ._build import Builder, Undecomposable, static, with_mask

SCORE_MOD_KINDS = ("multi_window", "blocked_local", "topk_sparse", "block_sparse", "uniform")
# a top-k count materializes (B, H, Sq, Skv, Skv) comparisons; beyond this it is not worth doing
TOPK_MAX_ELEMENTS = 1 << 26


def _offset(spec, q_len: int, kv_len: int) -> int:
    return kv_len - q_len if spec.mask.alignment == "bottom_right" else 0


def _shared_window(spec, windows):
    """Fold one window for every head into the mask fields (|i - j| <= w, ANDed with the existing mask)."""
    w = windows[0]
    m = spec.mask
    left = w if m.window_left is None else min(w, m.window_left)
    right = w if m.window_right is None else min(w, m.window_right)
    return with_mask(spec, window_left=left, window_right=right)


def _topk_keep(b: Builder, conn, top_k: int, label: str):
    """conn >= its row's k-th largest value  <=>  fewer than k entries of the row are strictly larger."""
    *lead, Sq, Skv = conn.shape
    numel = int(np.prod([static(d, "topk_sparse: connectivity dims") for d in conn.shape])) * static(Skv, "")
    if numel > TOPK_MAX_ELEMENTS:
        raise Undecomposable(f"topk_sparse: the top-{top_k} selection by pairwise counting needs {numel} "
                             f"comparisons (limit {TOPK_MAX_ELEMENTS}); the IR has no TopK op")
    mine = b.reshape(conn, (*lead, Sq, Skv, 1), f"{label}_j")
    other = b.reshape(conn, (*lead, Sq, 1, Skv), f"{label}_i")
    larger = b.reduce("sum", b.cast(b.binary("gt", other, mine, f"{label}_gt"), "float32", f"{label}_gt_f"), (-1,),
                      label=f"{label}_larger")
    return b.binary("lt", larger, b.const(np.full((), top_k, np.float32), f"{label}_k", dtype="float32"), f"{label}_keep")


def _block_keep(b: Builder, block_mask, block: int, q_len: int, kv_len: int, label: str):
    """Element (i, j) takes block_mask[.., i // block, j // block]: two gathers along the block axes."""
    rows = b.gather(block_mask, np.arange(q_len) // block, 2, f"{label}_rows")
    return b.gather(rows, np.arange(kv_len) // block, 3, f"{label}_cols")


@register_decomposition(*SCORE_MOD_KINDS)
def score_mods(b: Builder) -> list:
    spec = b.spec
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    q_len, kv_len = q.shape[2], k.shape[2]
    attn = b.plain_spec()
    const_keep = None          # numpy AND of the position-only masks
    dynamic = []               # IR bool values to AND
    for mod in spec.score_mods:
        if mod.kind == "multi_window":
            ws = mod.windows
            if all(w is None for w in ws):
                continue
            if all(w == ws[0] for w in ws):
                attn = _shared_window(attn, ws)
                continue
            n, m = static(q_len, "multi_window: query length"), static(kv_len, "multi_window: key length")
            d = np.abs(np.arange(n)[:, None] + _offset(spec, n, m) - np.arange(m)[None, :])
            keep = np.stack([np.ones_like(d, bool) if w is None else d <= w for w in ws])[None]
        elif mod.kind == "blocked_local":
            n, m = static(q_len, "blocked_local: query length"), static(kv_len, "blocked_local: key length")
            start = (np.arange(n) // mod.block_size * mod.block_size)[:, None]
            j = np.arange(m)[None, :]
            keep = (j >= start - mod.halo) & (j < start + mod.block_size + mod.halo)
        elif mod.kind == "topk_sparse":
            if static(kv_len, "topk_sparse: key length") > mod.top_k:
                dynamic.append(_topk_keep(b, b.named["connectivity"], mod.top_k, "topk"))
            continue
        elif mod.kind == "block_sparse":
            n, m = static(q_len, "block_sparse: query length"), static(kv_len, "block_sparse: key length")
            dynamic.append(_block_keep(b, b.named["block_mask"], mod.block_size, n, m, "block"))
            continue
        else:
            continue
        const_keep = keep if const_keep is None else (const_keep & keep)
    masks = ([b.const(const_keep, "keep", dtype="bool")] if const_keep is not None else []) + dynamic
    mask = masks[0] if masks else None
    for i, extra in enumerate(masks[1:]):
        mask = b.binary("and", mask, extra, f"keep_and{i}")
    blends = [mod.weight for mod in spec.score_mods if mod.kind == "uniform"]
    out = None
    if not blends or any(w < 1 for w in blends):   # pure uniform attention needs no scores
        attn = with_mask(attn, input="bool") if mask is not None else attn
        out = b.attention(attn, q, k, v, mask)
    for i, w in enumerate(blends):
        uni = uniform_context(b, v, q.shape[2], f"uniform{i}")
        if out is None or w == 1:
            B, H, _, Dv = uni.shape
            out = uni if uni.shape[2] == q.shape[2] else b.expand(uni, (B, H, q.shape[2], Dv), f"{label_of(i)}_rows")
        elif w > 0:
            out = b.binary("add", b.scale(out, 1 - w, f"keep_attn{i}"), b.scale(uni, w, f"keep_uniform{i}"), f"blend{i}")
    return [out]


def label_of(i: int) -> str:
    return f"uniform{i}"


def uniform_context(b: Builder, v, q_len, label: str):
    """Mean of the V rows visible to each query under the spec's position mask (rows with none visible: 0)."""
    spec = b.spec
    g = spec.num_heads // spec.num_kv_heads
    kv_len = v.shape[2]
    if spec.mask.window_left is None and spec.mask.effective_window_right is None:
        mean = b.reduce("mean", v, (2,), keepdims=True, label=f"{label}_mean")             # (B, Hkv, 1, Dv)
        return b.repeat_heads(mean, g, f"{label}_heads")                                  # broadcasts over Sq
    n, m = static(q_len, "uniform: query length"), static(kv_len, "uniform: key length")
    keep = position_keep_mask(spec.mask, n, m).astype(np.float64)
    weights = keep / np.maximum(keep.sum(-1, keepdims=True), 1.0)
    return b.matmul(b.const(weights, f"{label}_weights"), b.repeat_heads(v, g, f"{label}_heads"), f"{label}_mean")


@register_decomposition("head_blocks")
def head_blocks(b: Builder) -> list:
    """Per-head block keep-mask as a constant; with rel_bias the table is gathered per head by (rolled) i - j
    into an additive (1, H, S, S) mask, -inf outside the blocks, so the flash kernel takes it as its mask input."""
    feat = b.spec.score_mods[0]
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    n = static(q.shape[2], "head_blocks: sequence length")
    H = b.spec.num_heads
    keep, index = feat.layout(n)
    if not feat.rel_bias:
        mask = b.const(keep[None], "block_keep", dtype="bool")
        return [b.attention(with_mask(b.plain_spec(), input="bool"), q, k, v, mask)]
    width = 2 * max(feat.max_block, 1) - 1
    flat = b.reshape(b.named["rel_pos_bias"], (H * width,), "rel_table_flat")     # per-head rows, one gather
    rel = b.gather(flat, index + (np.arange(H) * width)[:, None, None], 0, "rel_bias")      # (H, n, n)
    blocked = np.array([s > 0 for s in feat.block_sizes])[:, None, None]
    zero_or_rel = b.where(b.const(np.broadcast_to(blocked, (H, n, n)).copy(), "blocked_heads", dtype="bool"), rel,
                          b.scalar(0.0, "zero"), "head_bias")
    bias = b.where(b.const(keep, "block_keep", dtype="bool"), zero_or_rel, b.scalar(-np.inf, "neg_inf"), "block_bias")
    mask = b.reshape(bias, (1, H, n, n), "block_bias_4d")
    return [b.attention(with_mask(b.plain_spec(), input="additive"), q, k, v, mask)]
