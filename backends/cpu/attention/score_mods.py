"""Score modifiers and mask modifiers: the only place attention variants live.

The kernels (prefill.py, decode.py) are variant-agnostic. For every score they
call :func:`apply_mods`, which runs the active entries of ``SCORE_MODS`` (in order)
and then ANDs the active entries of ``MASK_MODS``. A new variant is one small
function added to one of the tables:

* a score mod is ``fn(ctx, s) -> s'`` (``s`` is the scaled float32 score),
* a mask mod is ``fn(ctx) -> bool expr`` (True = attend).

Mask mods may also give block-level facts so the kernels can skip key blocks that
are fully masked (``kv_range``) and drop per-element work on blocks that are fully
visible (``block_full``); without them the mask is simply evaluated per element.

All functions receive TIR expressions and return TIR expressions; they run when
the kernel is generated, never at run time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from tvm.script import tirx as T

from ...core.attention_config import AttentionKernelConfig
from .mathfn import f32, fast_exp2, fast_tanh, NEG_INF, LOG2E  # noqa: F401


@dataclass
class ModContext:
    """What a mod can look at for one score: batch b, query head h, query row qi
    (0..q_len-1), key index kj (0..kv_len-1; may be a vector ramp), the optional mask
    tensor (shape (mB, mH, q_len, kv_len), mB in {1, B}, mH in {1, Hq})."""

    cfg: AttentionKernelConfig
    b: object
    h: object
    qi: object
    kj: object
    mask: object = None

    @property
    def pos(self):
        """Absolute position of the query (keys are at 0..kv_len-1)."""
        return self.qi + self.cfg.position_offset

    def mask_value(self):
        m = self.mask
        mb, mh = m.shape[0], m.shape[1]
        return m[T.min(self.b, mb - 1), T.min(self.h, mh - 1), self.qi, self.kj]


@dataclass(frozen=True)
class ScoreMod:
    name: str
    active: Callable[[AttentionKernelConfig], bool]
    fn: Callable[[ModContext, object], object]


@dataclass(frozen=True)
class MaskMod:
    name: str
    active: Callable[[AttentionKernelConfig], bool]
    fn: Callable[[ModContext], object]
    # (cfg, q_first, q_last) -> (kv_lo, kv_hi_exclusive) bounding all visible keys, or None
    kv_range: Optional[Callable] = None
    # (cfg, q_first, q_last, k_first, k_last) -> bool expr "every pair visible", or None
    block_full: Optional[Callable] = None


# ----------------------------------------------------------------- score mods
def _softcap(ctx: ModContext, s):
    c = float(ctx.cfg.softcap)
    return f32(c) * fast_tanh(s * f32(1.0 / c))


def alibi_slope(q_heads: int, max_bias: float, h):
    """ALiBi's slope of query head h as a TIR expression: 2^(-max_bias·k/n), n = 2^ceil(log2 H), k = h + 1; for H
    not a power of two the even k (2, 4, .., n) then the odd ones (MPT's gen_slopes, BLOOM's build_alibi_tensor)."""
    n = 1 << (q_heads - 1).bit_length()
    k = h + 1 if n == q_heads else T.Select(h < n // 2, 2 * h + 2, 2 * (h - n // 2) + 1)
    return fast_exp2(f32(-float(max_bias) / n) * T.Cast("float32", k))


def _alibi(ctx: ModContext, s):
    # the key's offset from the query's position, times the head's slope: no (Sq, Skv) bias tensor is read
    rel = T.Cast("float32", ctx.kj - ctx.pos)
    return s + alibi_slope(ctx.cfg.q_heads, ctx.cfg.alibi, ctx.h) * rel


def t5_steps(bidirectional: bool, num_buckets: int, max_distance: int) -> tuple[int, int, list[int]]:
    """(half, max_exact, distances where T5's log buckets step up): the bucket of distance a >= max_exact is
    max_exact + #{steps <= a}. Read off the IR's rule (torch's float32 log), so the edges are the model's and the
    kernel needs no log."""
    import numpy as np

    from ....ir.ops.attention_features.position_bias import t5_buckets

    half = num_buckets // 2 if bidirectional else num_buckets
    max_exact = half // 2
    a = np.arange(0, 2 * max_distance + 2 * half + 2)
    f = t5_buckets(-a, bidirectional, num_buckets, max_distance)     # rel = -a: no bidirectional offset
    if not (np.all(np.diff(f) >= 0) and np.array_equal(f[:max_exact], a[:max_exact]) and f[-1] == half - 1):
        raise ValueError(f"t5 buckets {(bidirectional, num_buckets, max_distance)} are not a monotone step rule")
    return half, max_exact, [int(np.argmax(f >= b)) for b in range(max_exact + 1, half)]


def _t5_bias(ctx: ModContext, s):
    # table[h, bucket(k_pos - q_pos)]: the bucket from integer compares against the step distances
    half, max_exact, steps = t5_steps(*ctx.cfg.t5_bias)
    rel = ctx.kj - ctx.pos
    if ctx.cfg.t5_bias[0]:
        base, a = T.Select(rel > 0, half, 0), T.abs(rel)
    else:
        base, a = 0, T.max(-rel, 0)
    logb = max_exact
    for t in steps:
        logb = logb + T.Cast("int32", a >= t)
    return s + ctx.mask[0, ctx.h, 0, base + T.Select(a < max_exact, a, logb)]


def _additive(ctx: ModContext, s):
    return s + T.Cast("float32", ctx.mask_value())


SCORE_MODS: list[ScoreMod] = [
    ScoreMod("softcap", lambda c: c.softcap is not None, _softcap),     # before masking
    ScoreMod("alibi", lambda c: c.alibi is not None, _alibi),           # where the spec's bias sits
    ScoreMod("t5_bias", lambda c: c.t5_bias is not None, _t5_bias),     # reads the "table" mask argument
    ScoreMod("additive_mask", lambda c: c.mask_input == "additive", _additive),
]


# ------------------------------------------------------------------ mask mods
def _kv_bound(ctx: ModContext):
    return ctx.kj < ctx.cfg.kv_len


def _kv_bound_full(cfg, q0, q1, k0, k1):
    return k1 < cfg.kv_len


def _window(ctx: ModContext):
    cfg, cond = ctx.cfg, None
    wl, wr = cfg.eff_window_left, cfg.eff_window_right
    if wl is not None:
        cond = ctx.kj >= ctx.pos - wl
    if wr is not None:
        c2 = ctx.kj <= ctx.pos + wr
        cond = c2 if cond is None else T.And(cond, c2)
    return cond


def _window_range(cfg, q0, q1):
    off, wl, wr = cfg.position_offset, cfg.eff_window_left, cfg.eff_window_right
    lo = 0 if wl is None else T.max(q0 + off - wl, 0)
    hi = cfg.kv_len if wr is None else T.min(q1 + off + wr + 1, cfg.kv_len)
    return lo, hi


def _window_full(cfg, q0, q1, k0, k1):
    off, wl, wr = cfg.position_offset, cfg.eff_window_left, cfg.eff_window_right
    cond = None
    if wr is not None:
        cond = k1 <= q0 + off + wr
    if wl is not None:
        c2 = k0 >= q1 + off - wl
        cond = c2 if cond is None else T.And(cond, c2)
    return cond


def _bool_mask(ctx: ModContext):
    return ctx.mask_value() != T.uint8(0)


MASK_MODS: list[MaskMod] = [
    MaskMod("kv_bound", lambda c: True, _kv_bound, None, _kv_bound_full),
    MaskMod("window", lambda c: c.has_window, _window, _window_range, _window_full),
    MaskMod("bool_mask", lambda c: c.mask_input == "bool", _bool_mask),
]


# ------------------------------------------------------------------- drivers
def active_score_mods(cfg):
    return [m for m in SCORE_MODS if m.active(cfg)]


def active_mask_mods(cfg):
    return [m for m in MASK_MODS if m.active(cfg)]


def has_elementwise_mods(cfg) -> bool:
    """True when every block needs a per-score pass (score mods or opaque masks)."""
    return bool(active_score_mods(cfg)) or any(
        m.block_full is None for m in active_mask_mods(cfg))


def apply_mods(ctx: ModContext, s):
    """Scaled score -> modified score, -inf where masked."""
    for m in active_score_mods(ctx.cfg):
        s = m.fn(ctx, s)
    keep = None
    for m in active_mask_mods(ctx.cfg):
        k = m.fn(ctx)
        if k is not None:
            keep = k if keep is None else T.And(keep, k)
    if keep is not None:
        s = T.Select(keep, s, f32(NEG_INF))
    return s


def kv_range(cfg, q0, q1):
    """Visible key range [lo, hi) for query rows q0..q1 (inclusive)."""
    lo, hi = 0, cfg.kv_len
    for m in active_mask_mods(cfg):
        if m.kv_range is not None:
            l2, h2 = m.kv_range(cfg, q0, q1)
            lo = l2 if isinstance(lo, int) and lo == 0 else T.max(lo, l2)
            hi = h2 if isinstance(hi, int) and hi == cfg.kv_len else T.min(hi, h2)
    return lo, hi


def block_full(cfg, q0, q1, k0, k1):
    """Bool expr: every (query, key) pair of the block is visible and unmodified by masks,
    or None if that can never be known (then every block takes the per-score pass)."""
    cond = None
    for m in active_mask_mods(cfg):
        if m.block_full is None:
            return None
        c = m.block_full(cfg, q0, q1, k0, k1)
        if c is not None:
            cond = c if cond is None else T.And(cond, c)
    return cond
