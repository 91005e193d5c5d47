"""Masks on attention scores: recognize position masks (causal, sliding window) from constants and
sliced tril/triu buffers; anything else becomes a bool keep-mask or additive-bias input.

A "keep pattern" is (buffer, row_start, col_start): the mask at (i, j) equals buffer[i + row_start,
j + col_start], with a 2-D bool buffer (True = attend). Slicing a buffer by position
(`bias[:, :, past:past+S, :past+S]`) moves the starts; the band of the buffer gives the window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import dims as D
from ...graph import Value
from ...ops import MaskSpec
from .common import LARGE_NEGATIVE, MatchContext, is_batch_view, producer_kind


@dataclass
class KeepPattern:
    buffer: np.ndarray  # 2-D bool, True = attend
    row_start: D.Dim = 0
    col_start: D.Dim = 0


def keep_from_values(a: np.ndarray, additive: bool) -> np.ndarray | None:
    """Bool keep-matrix (trailing two axes) of a constant mask; None unless it is position-only.

    Leading (batch/head) axes must be size 1 or hold identical copies; an additive mask must hold only
    0 (attend) and -inf / very negative values (masked)."""
    a = np.asarray(a)
    if a.ndim < 2:
        return None
    flat = a.reshape((-1,) + a.shape[-2:])
    if not all(np.array_equal(flat[0], x) for x in flat[1:]):
        return None
    m = flat[0]
    if not additive:
        return m.astype(bool) if m.dtype == np.bool_ else None
    if m.dtype.kind != "f":
        return None
    m = m.astype(np.float64)
    keep = m == 0
    if not np.all(keep | (m <= LARGE_NEGATIVE)):
        return None
    return keep


def trace_keep(ctx: MatchContext, v: Value, additive: bool, depth: int = 0) -> KeepPattern | None:
    """Follow a mask value back through slices, leading-axis reshapes/expands, casts, logical not and
    Where(c, 0, -inf) to a constant; None when it is not a (sliced) constant position mask."""
    if depth > 16:
        return None
    val = ctx.const(v)
    if val is not None:
        keep = keep_from_values(val, additive)
        return None if keep is None else KeepPattern(keep)
    n = v.producer
    if n is None or v.rank < 2:
        return None
    kind, r = n.op.op_name, v.rank
    if kind == "Slice":
        x = n.inputs[0]
        ax = n.op.axis % r
        start = n.op.start
        if n.op.step != 1 or (isinstance(start, int) and start < 0):
            return None
        if ax < r - 2 and not (x.shape[ax] == 1 or (start == 0 and D.equal(v.shape[ax], x.shape[ax]))):
            return None  # picks some batch/head rows: not position-only
        inner = trace_keep(ctx, x, additive, depth + 1)
        if inner is None:
            return None
        if ax == r - 2:
            inner.row_start = D.add(inner.row_start, start)
        elif ax == r - 1:
            inner.col_start = D.add(inner.col_start, start)
        return inner
    if kind in ("Reshape", "Expand"):
        x = n.inputs[0]
        if x.rank < 2 or not (D.equal(x.shape[-1], v.shape[-1]) and D.equal(x.shape[-2], v.shape[-2])):
            return None
        if kind == "Reshape" and not all(d == 1 for d in list(x.shape[:-2]) + list(v.shape[:-2])):
            return None
        return trace_keep(ctx, x, additive, depth + 1)
    if kind == "Cast":
        x = n.inputs[0]
        if (x.dtype == "bool") != (not additive):
            return None  # bool -> float gives 1/0, not 0/-inf
        return trace_keep(ctx, x, additive, depth + 1)
    if kind == "Unary" and n.op.fn == "not" and not additive:
        inner = trace_keep(ctx, n.inputs[0], False, depth + 1)
        if inner is not None:
            inner.buffer = ~inner.buffer
        return inner
    if kind == "Where" and additive:
        c, a, b = n.inputs
        sa, sb = ctx.scalar(a), ctx.scalar(b)
        if sa is None or sb is None:
            return None
        inner = trace_keep(ctx, c, False, depth + 1)
        if inner is None:
            return None
        if sa == 0 and sb <= LARGE_NEGATIVE:
            return inner
        if sb == 0 and sa <= LARGE_NEGATIVE:
            inner.buffer = ~inner.buffer
            return inner
    return None


def _band(rows: int, cols: int, offset: int, left: int | None, right: int | None) -> np.ndarray:
    d = np.arange(cols)[None, :] - np.arange(rows)[:, None] - offset
    keep = np.ones((rows, cols), bool)
    if left is not None:
        keep &= d >= -left
    if right is not None:
        keep &= d <= right
    return keep


def match_band(keep: np.ndarray, offset: int) -> tuple[int | None, int | None] | None:
    """(window_left, window_right) such that keep[i, j] == (-left <= j - i - offset <= right), with
    None where that side never cuts anything; None when `keep` is not such a band."""
    rows, cols = keep.shape
    if not keep.any():
        return None
    d = np.arange(cols)[None, :] - np.arange(rows)[:, None] - offset
    left, right = int(-d[keep].min()), int(d[keep].max())
    if left < 0 or right < 0 or not np.array_equal(keep, _band(rows, cols, offset, left, right)):
        return None
    if np.array_equal(keep, _band(rows, cols, offset, None, right)):
        left = None
    if np.array_equal(keep, _band(rows, cols, offset, left, None)):
        right = None
    return left, right


def position_mask(pattern: KeepPattern, q_len: D.Dim, kv_len: D.Dim) -> MaskSpec | None:
    """The MaskSpec of a keep pattern seen as a (q_len, kv_len) mask; None when it is not causal/windowed
    with top-left or bottom-right alignment. An everything-visible pattern gives an empty MaskSpec."""
    buf = pattern.buffer
    offset = D.add(pattern.row_start, D.mul(-1, pattern.col_start))
    bottom_right = D.add(kv_len, D.mul(-1, q_len))
    band = match_band(buf, 0)
    if D.equal(pattern.row_start, 0) and D.equal(pattern.col_start, 0) and isinstance(bottom_right, int) \
            and bottom_right != 0 and (band is None or band[1] != 0):
        # a whole constant (q_len, kv_len) mask may be causal in bottom-right coordinates
        alt = match_band(buf, bottom_right)
        if alt is not None and (band is None or alt[1] == 0):
            band, offset = alt, bottom_right
    if band is None:
        return None
    left, right = band
    if left is None and right is None:
        return MaskSpec()
    if D.equal(offset, 0):
        alignment = "top_left"
    elif D.equal(offset, bottom_right):
        alignment = "bottom_right"
    else:
        return None
    if right == 0:
        return MaskSpec(causal=True, alignment=alignment, window_left=left)
    return MaskSpec(alignment=alignment, window_left=left, window_right=right)


def is_fill(ctx: MatchContext, v: Value) -> bool:
    """Whether `v` is a constant "masked" fill (-inf or very negative)."""
    s = ctx.scalar(v)
    return s is not None and s <= LARGE_NEGATIVE


def reaches_matmul(v: Value, depth: int = 0) -> bool:
    """Whether `v` is computed from a MatMul through score-side ops (scale, mask, softcap, casts)."""
    if v is None or v.producer is None or depth > 24:
        return False
    n = v.producer
    kind = n.op.op_name
    if kind == "MatMul":
        return True
    if kind in ("Cast", "Unary") or is_batch_view(v):
        return reaches_matmul(n.inputs[0], depth + 1)
    if kind == "Binary" and n.op.fn in ("add", "sub", "mul", "div"):
        return any(reaches_matmul(x, depth + 1) for x in n.inputs)
    if kind == "Where":
        return any(reaches_matmul(x, depth + 1) for x in n.inputs[1:])
    if (kind == "Transpose" and tuple(n.op.perm) in ((0, 3, 1, 2), (0, 2, 3, 1))) or kind == "Linear":
        return reaches_matmul(n.inputs[0], depth + 1)   # the talking-heads logit mix (recognize/talking_heads.py)
    return False


__all__ = ["KeepPattern", "trace_keep", "match_band", "position_mask", "is_fill", "reaches_matmul", "producer_kind"]
