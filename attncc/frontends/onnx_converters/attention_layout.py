"""Layout and mask helpers shared by the ONNX and com.microsoft attention converters."""
from __future__ import annotations

import numpy as np

from ...ir import Value
from ...ir import dims as D
from ...ir.ops import Binary, Concat, Expand, Reshape, Transpose, Where
from .context import ImportContext
from .tensor_ops import filled


def split_heads(ctx: ImportContext, x: Value, heads: int, what: str) -> Value:
    """(B, S, H*D) -> (B, H, S, D)."""
    ctx.check(x.rank == 3, f"{what} must be rank 3 (batch, seq, heads*head_dim), got {x.type}")
    hidden = x.shape[2]
    ctx.check(isinstance(hidden, int) and hidden % heads == 0,
              f"{what} hidden size {hidden} is not divisible by its head count {heads}")
    b, s = x.shape[0], x.shape[1]
    y = ctx.add1(Reshape((b, s, heads, hidden // heads)), [x], name=f"{what}_heads")
    return ctx.add1(Transpose((0, 2, 1, 3)), [y], name=f"{what}_bhsd")


def merge_heads(ctx: ImportContext, y: Value, what: str = "output") -> Value:
    """(B, H, S, D) -> (B, S, H*D)."""
    t = ctx.add1(Transpose((0, 2, 1, 3)), [y], name=f"{what}_bshd")
    b, s, h, d = t.shape
    return ctx.add1(Reshape((b, s, D.mul(h, d))), [t], name=f"{what}_merged")


def pad_mask_keys(ctx: ImportContext, mask: Value, kv_total) -> Value:
    """Pad the key axis of a mask shorter than the keys with 'masked' (False / -inf), as ONNX Attention does."""
    have = mask.shape[-1]
    if D.equal(have, kv_total):
        return mask
    ctx.check(isinstance(have, int) and isinstance(kv_total, int) and have < kv_total,
              f"attn_mask key length {have} does not match the {kv_total} keys and cannot be padded")
    shape = list(mask.shape)
    shape[-1] = kv_total - have
    fill = False if mask.dtype == "bool" else -np.inf
    return ctx.add1(Concat(mask.rank - 1), [mask, filled(ctx, fill, mask.dtype, shape)], name="mask_padded")


def offset_keep_mask(ctx: ImportContext, lengths: Value, q_len, kv_len, causal: bool,
                     left: int | None, right: int | None) -> Value:
    """(B, 1, Sq, Skv) bool keep-mask with per-batch bottom-right offsets offset[b] = lengths[b] - Sq.

    Query i sits at position i + offset[b]; key j is kept iff pos - left <= j <= pos (+ right).
    """
    ctx.check(isinstance(q_len, int) and isinstance(kv_len, int),
              f"per-batch causal/window offsets need static query/key lengths, got {q_len} and {kv_len}")
    lens = ctx.cast(lengths, "int64")
    b = lens.shape[0]
    lens = ctx.add1(Reshape((b, 1, 1)), [lens], name="kv_len_b11")
    i = ctx.constant(np.arange(q_len, dtype=np.int64).reshape(q_len, 1) - q_len, name="q_index")
    j = ctx.constant(np.arange(kv_len, dtype=np.int64).reshape(1, kv_len), name="k_index")
    pos = ctx.add1(Binary("add"), [lens, i], name="q_position")
    diff = ctx.add1(Binary("sub"), [pos, j], name="q_minus_k")  # (B, Sq, Skv)
    keep = None
    bounds = []
    if causal or right is not None:
        bounds.append(("ge", -(right or 0) if not causal else 0))
    if left is not None:
        bounds.append(("le", left))
    for fn, bound in bounds:
        k = ctx.add1(Binary(fn), [diff, ctx.constant(np.array(bound, np.int64), name="bound")], name="window_keep")
        keep = k if keep is None else ctx.add1(Binary("and"), [keep, k])
    return ctx.add1(Reshape((b, 1, q_len, kv_len)), [keep], name="offset_keep")


def combine_masks(ctx: ImportContext, mask: Value | None, keep: Value, dtype: str) -> Value:
    """AND a bool keep-mask into a bool mask, or turn it into -inf where dropped for an additive mask."""
    if mask is None:
        return keep
    if mask.dtype == "bool":
        return ctx.add1(Binary("and"), [mask, keep], name="mask_and")
    neg = ctx.constant(np.array(-np.inf), dtype=mask.dtype, name="neg_inf")
    return ctx.add1(Where(), [keep, mask, neg], name="mask_where")


def repeat_kv(ctx: ImportContext, x: Value, group: int) -> Value:
    """(B, Hkv, S, D) -> (B, Hkv*group, S, D), query head h reading kv head h // group."""
    if group == 1:
        return x
    b, h, s, d = x.shape
    y = ctx.add1(Reshape((b, h, 1, s, d)), [x])
    y = ctx.add1(Expand((b, h, group, s, d)), [y])
    return ctx.add1(Reshape((b, D.mul(h, group), s, d)), [y], name="repeat_kv")


def fixed_offset_keep_mask(ctx: ImportContext, q_len, kv_len, offset, causal: bool,
                           left: int | None, right: int | None) -> Value:
    """(Sq, Skv) constant keep-mask for queries at positions offset + i (an offset MaskSpec cannot name)."""
    ctx.check(all(isinstance(d, int) for d in (q_len, kv_len, offset)),
              f"causal/window offsets other than top-left/bottom-right need static lengths, "
              f"got q {q_len}, keys {kv_len}, offset {offset}")
    diff = (np.arange(q_len)[:, None] + offset) - np.arange(kv_len)[None, :]
    keep = np.ones((q_len, kv_len), bool)
    if causal or right is not None:
        keep &= diff >= (0 if causal else -right)
    if left is not None:
        keep &= diff <= left
    return ctx.constant(keep, name="position_keep")
