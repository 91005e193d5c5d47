"""Prefill kernel: online-softmax flash attention in hand-written TIR.

One parallel task per (batch, query head, query block of BQ rows):

1. K is packed once (first parallel stage) into float32 panels ``Kp[b, hk, p, d, 32]``
   (32 keys per panel, zero-padded), so S = Q K^T is a register-tiled GEMM
   (R rows x 32 keys = 2R AVX-512 accumulators, loop over d).
2. Per key block of BK keys inside the visible range (blocks fully masked by
   causal/window are never visited): S tile, per-score mods (only on blocks that
   need them), online-softmax update (polynomial exp2, fp32), and
   acc += P V as a second register-tiled GEMM (R2 rows x W2 value columns).
3. out = acc / l (0 for rows with no visible key).
"""
from __future__ import annotations

from dataclasses import dataclass

from tvm.script import tirx as T

from ...core.attention_config import AttentionKernelConfig
from .mathfn import NEG_INF, f32
from . import score_mods as sm
from .dynamic import SizedConfig, sizes
from .entry import attention_entry
from .tiles import REG_ROWS, make_online_softmax, pick_pv

PANEL = 32


@dataclass(frozen=True)
class PrefillSchedule:
    q_block: int
    kv_block: int
    qk_rows: int     # R: rows of the QK register tile (tile = R x 32)
    pv_rows: int     # R2: rows of the PV register tile
    pv_width: int    # W2: value columns of the PV register tile


def choose_schedule(cfg: AttentionKernelConfig) -> PrefillSchedule:
    """Tile sizes measured on a 2-core Zen4 (32 KiB L1d): BQ=64 query rows, BK=128 keys
    (S tile 64x128 fp32 = 32 KiB stays in L1); BK=64 for sliding windows (less work
    in partially visible blocks)."""
    bq = cfg.q_block or (64 if cfg.q_len >= 64 else max(8, -(-cfg.q_len // 8) * 8))
    windowed = cfg.eff_window_left is not None
    bk_default = 64 if windowed else 128
    bk = cfg.kv_block or min(bk_default, -(-cfg.kv_len // PANEL) * PANEL)
    # register budget: QK tile R x 32 keys = 2R zmm accumulators of 32 with AVX-512; with AVX2 (16 ymm)
    # the same tile is 4R registers, so R = REG_ROWS (2) there (tiles.py has the measurements)
    r = REG_ROWS
    while bq % r:
        r //= 2
    return PrefillSchedule(bq, bk, r, REG_ROWS, 32)  # PV tile refined by tiles.pick_pv


def make_prefill(cfg: AttentionKernelConfig, sched: PrefillSchedule | None = None):
    sched = sched or choose_schedule(cfg)
    HQ, HKV, G = cfg.q_heads, cfg.kv_heads, cfg.group
    B, QL, KL = sizes(cfg)
    cfg = SizedConfig(cfg, B, QL, KL)
    D, DV = cfg.head_dim, cfg.v_head_dim
    DT = cfg.dtype
    BQ, BK, R, R2, W2 = sched.q_block, sched.kv_block, sched.qk_rows, sched.pv_rows, sched.pv_width
    assert BK % PANEL == 0 and BQ % R == 0
    NQB = (QL + BQ - 1) // BQ
    NKP = (KL + PANEL - 1) // PANEL    # key panels
    KLP = NKP * PANEL                  # padded key length
    NPB = BK // PANEL                  # panels per key block
    SCALE = float(cfg.scale)
    elementwise = sm.has_elementwise_mods(cfg)
    NEG = f32(NEG_INF)
    online_softmax = make_online_softmax(BQ, BK)
    pv_update, (R2, W2) = pick_pv(BQ, DV, R2)
    sched = PrefillSchedule(BQ, BK, R, R2, W2)

    def mods(M, b, h, qi, kj, s):
        return sm.apply_mods(sm.ModContext(cfg, b, h, qi, kj, M), s)

    def block_is_full(q0, q1, k0, k1):
        c = sm.block_full(cfg, q0, q1, k0, k1)
        return False if c is None else c

    def kv_lo(q0, q1):
        return sm.kv_range(cfg, q0, q1)[0]

    def kv_hi(q0, q1):
        return sm.kv_range(cfg, q0, q1)[1]

    @T.macro
    def body(q, k, v, M, o):
        Kp = T.decl_buffer((B, HKV, NKP, D, PANEL), "float32")
        # ---- stage 1: pack K^T into 32-key panels (fp32, zero padded)
        for t in T.parallel(B * HKV * NKP):
            for jj in range(PANEL):
                for d in range(D):
                    Kp[t // (HKV * NKP), t // NKP % HKV, t % NKP, d, jj] = T.if_then_else(
                        t % NKP * PANEL + jj < KL,
                        T.Cast("float32", k[t // (HKV * NKP), t // NKP % HKV,
                                            T.min(t % NKP * PANEL + jj, KL - 1), d]),
                        f32(0.0))
        # ---- stage 2: flash attention per (b, h, q block)
        for t in T.parallel(B * HQ * NQB):
            Qs = T.decl_buffer((BQ, D), "float32")
            S = T.decl_buffer((BQ, BK), "float32")
            acc = T.decl_buffer((BQ, DV), "float32")
            mrow = T.decl_buffer((BQ,), "float32")
            lrow = T.decl_buffer((BQ,), "float32")
            alpha = T.decl_buffer((BQ,), "float32")
            red = T.decl_buffer((16,), "float32")
            sc = T.decl_buffer((2,), "float32")
            b = T.bind(t // (HQ * NQB))
            h = T.bind(t // NQB % HQ)
            hk = T.bind(h // G)
            # zig-zag order of query blocks (0, n-1, 1, n-2, ...): any contiguous chunk of
            # tasks (TVM splits parallel loops statically) gets balanced causal work
            q0 = T.bind(T.Select(t % NQB % 2 == 0, t % NQB // 2, NQB - 1 - t % NQB // 2) * BQ)
            q1 = T.bind(T.min(q0 + BQ, QL) - 1)
            for i in range(BQ):
                for d in T.vectorized(D):
                    Qs[i, d] = T.if_then_else(
                        q0 + i < QL,
                        T.Cast("float32", q[b, h, T.min(q0 + i, QL - 1), d]) * f32(SCALE),
                        f32(0.0))
                for d in T.vectorized(DV):
                    acc[i, d] = f32(0.0)
                mrow[i] = NEG
                lrow[i] = f32(0.0)
            kb_lo = T.bind(kv_lo(q0, q1) // BK)
            kb_hi = T.bind(T.max((kv_hi(q0, q1) + BK - 1) // BK, kb_lo))
            for kb in range(kb_lo, kb_hi):
                k0 = T.bind(kb * BK)
                np_ = T.bind(T.min(NPB, NKP - kb * NPB))
                # ---- S = Qs @ K^T  (register tile R x 32, loop over d)
                for p in range(np_):
                    for ib in range(BQ // R):
                        # two (R, 16) halves: each < 1 KiB so it stays an alloca -> registers
                        sa = T.decl_buffer((R, 16), "float32")
                        sb = T.decl_buffer((R, 16), "float32")
                        for i in T.unroll(R):
                            for jv in T.vectorized(16):
                                sa[i, jv] = f32(0.0)
                                sb[i, jv] = f32(0.0)
                        for d in range(D):
                            for i in T.unroll(R):
                                for jv in T.vectorized(16):
                                    sa[i, jv] = sa[i, jv] + Qs[ib * R + i, d] * Kp[b, hk, kb * NPB + p, d, jv]
                                    sb[i, jv] = sb[i, jv] + Qs[ib * R + i, d] * Kp[b, hk, kb * NPB + p, d, 16 + jv]
                        for i in T.unroll(R):
                            for jv in T.vectorized(16):
                                S[ib * R + i, p * PANEL + jv] = sa[i, jv]
                                S[ib * R + i, p * PANEL + 16 + jv] = sb[i, jv]
                # ---- per-score mods / masks, only where needed
                if elementwise:
                    for i in range(BQ):
                        for j in T.vectorized(BK):
                            S[i, j] = mods(M, b, h, T.min(q0 + i, QL - 1), k0 + j, S[i, j])
                else:
                    if not block_is_full(q0, q1, k0, k0 + BK - 1):
                        for i in range(BQ):
                            for j in T.vectorized(BK):
                                S[i, j] = mods(M, b, h, T.min(q0 + i, QL - 1), k0 + j, S[i, j])
                # ---- online softmax, then acc = alpha * acc + P @ V
                online_softmax(S, mrow, lrow, alpha, red, sc)
                pv_update(S, acc, alpha, v, b, hk, k0, T.min(BK, KL - k0))
            # ---- epilogue
            for i in range(T.min(BQ, QL - q0)):
                sc[0] = T.Select(lrow[i] > f32(0.0), f32(1.0) / lrow[i], f32(0.0))
                for d in T.vectorized(DV):
                    o[b, h, q0 + i, d] = T.Cast(DT, acc[i, d] * sc[0])

    return attention_entry(cfg, body, B, QL, KL), sched
