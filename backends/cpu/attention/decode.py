"""Decode kernel: split-KV attention for short query lengths.

One parallel task per (batch, kv head, split). All G = Hq/Hkv query heads of the kv
group and all q_len query rows are processed together (NR = G * q_len rows), so each
K/V row is read from memory exactly once. Within a split, keys are processed in
blocks of BK with the same online softmax and register-tiled P@V as prefill; QK^T is
a dot product along the head dim (vector partial sums + tree reduction), because K is
streamed once and packing it would double the memory traffic.

Each split writes a normalised partial output and its log-sum-exp; a second parallel
stage merges the splits (rows with no visible key produce 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from tvm.script import tirx as T

from ...core.attention_config import AttentionKernelConfig
from .mathfn import NEG_INF, f32
from . import score_mods as sm
from .dynamic import SizedConfig, sizes
from .entry import attention_entry
from .tiles import REG_ROWS, make_online_softmax, pick_pv, vec_width

DECODE_MAX_Q = 8


@dataclass(frozen=True)
class DecodeSchedule:
    num_splits: int
    kv_block: int
    pv_rows: int
    pv_width: int


def choose_schedule(cfg: AttentionKernelConfig, threads: int = 2) -> DecodeSchedule:
    if "kv_len" in cfg.dynamic:
        # one build for every length: 128-key blocks, and enough splits for every thread (x8 for balance);
        # short caches leave trailing splits empty (an empty loop and a -inf log-sum-exp, merged away)
        tasks = max(1, cfg.batch * cfg.kv_heads)
        return DecodeSchedule(cfg.num_splits or max(1, -(-8 * threads // tasks)), cfg.kv_block or 128, 0, 0)
    bk = cfg.kv_block or (256 if cfg.kv_len >= 256 else -(-cfg.kv_len // 16) * 16)
    if cfg.num_splits:
        ns = cfg.num_splits
    else:
        tasks = cfg.batch * cfg.kv_heads
        # enough tasks for every thread (x8 for balance), splits of >= 512 keys
        ns = max(1, min(cfg.kv_len // 512, -(-8 * threads // tasks)))
    ns = max(1, min(ns, -(-cfg.kv_len // bk)))
    return DecodeSchedule(ns, bk, 0, 0)


def make_decode(cfg: AttentionKernelConfig, sched: DecodeSchedule | None = None, threads: int = 2):
    sched = sched or choose_schedule(cfg, threads)
    HQ, HKV, G = cfg.q_heads, cfg.kv_heads, cfg.group
    B, QL, KL = sizes(cfg)
    if "q_len" in cfg.dynamic:
        raise ValueError("the decode kernel needs a static q_len (rows per task); use the prefill kernel")
    cfg = SizedConfig(cfg, B, QL, KL)
    D, DV = cfg.head_dim, cfg.v_head_dim
    DT = cfg.dtype
    NR = G * QL                          # rows per task: row r = g * QL + qi
    NS, BK = sched.num_splits, sched.kv_block
    assert BK % 16 == 0
    CH = (KL + NS - 1) // NS             # keys per split
    CH = (CH + BK - 1) // BK * BK        # split boundaries on block boundaries
    if isinstance(KL, int):
        NS = -(-KL // CH)
    SCALE = float(cfg.scale)
    elementwise = sm.has_elementwise_mods(cfg)
    NEG = f32(NEG_INF)
    DW = vec_width(D)                    # lanes of the QK partial sums
    online_softmax = make_online_softmax(NR, BK)
    pv_update, (R2, W2) = pick_pv(NR, DV, REG_ROWS)
    sched = DecodeSchedule(NS, BK, R2, W2)

    def mods(M, b, h, qi, kj, s):
        return sm.apply_mods(sm.ModContext(cfg, b, h, qi, kj, M), s)

    def block_is_full(k0, k1):
        c = sm.block_full(cfg, 0, QL - 1, k0, k1)
        return False if c is None else c

    def kv_lo():
        return sm.kv_range(cfg, 0, QL - 1)[0]

    def kv_hi():
        return sm.kv_range(cfg, 0, QL - 1)[1]

    @T.macro
    def body(q, k, v, M, o):
        Op = T.decl_buffer((B, HKV, NS, NR, DV), "float32")
        Lse = T.decl_buffer((B, HKV, NS, NR), "float32")
        for t in T.parallel(B * HKV * NS):
            Qs = T.decl_buffer((NR, D), "float32")
            S = T.decl_buffer((NR, BK), "float32")
            acc = T.decl_buffer((NR, DV), "float32")
            mrow = T.decl_buffer((NR,), "float32")
            lrow = T.decl_buffer((NR,), "float32")
            alpha = T.decl_buffer((NR,), "float32")
            red = T.decl_buffer((16,), "float32")
            sc = T.decl_buffer((2,), "float32")
            part = T.decl_buffer((DW,), "float32")
            b = T.bind(t // (HKV * NS))
            hk = T.bind(t // NS % HKV)
            s = T.bind(t % NS)
            for r in range(NR):
                for d in T.vectorized(D):
                    Qs[r, d] = T.Cast("float32", q[b, hk * G + r // QL, r % QL, d]) * f32(SCALE)
                for d in T.vectorized(DV):
                    acc[r, d] = f32(0.0)
                mrow[r] = NEG
                lrow[r] = f32(0.0)
            lo = T.bind(T.max(s * CH, kv_lo()))
            hi = T.bind(T.min(s * CH + CH, kv_hi()))
            for kb in range(lo // BK, T.max((hi + BK - 1) // BK, lo // BK)):
                k0 = T.bind(kb * BK)
                jl = T.bind(T.min(BK, KL - k0))
                # ---- S = Q K^T: dot products along d, DW-lane partial sums, tree reduction
                for j in range(jl):
                    for r in range(NR):
                        for dv in T.vectorized(DW):
                            part[dv] = f32(0.0)
                        for dc in range(D // DW):
                            for dv in T.vectorized(DW):
                                part[dv] = part[dv] + Qs[r, dc * DW + dv] * T.Cast(
                                    "float32", k[b, hk, k0 + j, dc * DW + dv])
                        if DW >= 16:
                            for dv in T.vectorized(8):
                                part[dv] = part[dv] + part[dv + 8]
                        if DW >= 8:
                            for dv in T.vectorized(4):
                                part[dv] = part[dv] + part[dv + 4]
                        if DW >= 4:
                            for dv in T.vectorized(2):
                                part[dv] = part[dv] + part[dv + 2]
                        if DW >= 2:
                            part[0] = part[0] + part[1]
                        S[r, j] = part[0]
                # ---- mods / masks (also masks the tail of a short last block)
                if elementwise:
                    for r in range(NR):
                        for j in T.vectorized(BK):
                            S[r, j] = mods(M, b, hk * G + r // QL, r % QL, k0 + j, S[r, j])
                else:
                    if not block_is_full(k0, k0 + BK - 1):
                        for r in range(NR):
                            for j in T.vectorized(BK):
                                S[r, j] = mods(M, b, hk * G + r // QL, r % QL, k0 + j, S[r, j])
                online_softmax(S, mrow, lrow, alpha, red, sc)
                pv_update(S, acc, alpha, v, b, hk, k0, jl)
            for r in range(NR):
                sc[0] = T.Select(lrow[r] > f32(0.0), f32(1.0) / lrow[r], f32(0.0))
                for d in T.vectorized(DV):
                    Op[b, hk, s, r, d] = acc[r, d] * sc[0]
                Lse[b, hk, s, r] = T.Select(lrow[r] > f32(0.0), mrow[r] + T.log(lrow[r]), NEG)
        # ---- merge the splits
        for t in T.parallel(B * HKV * NR):
            w = T.decl_buffer((NS + 1,), "float32")
            mo = T.decl_buffer((DV,), "float32")
            b = T.bind(t // (HKV * NR))
            hk = T.bind(t // NR % HKV)
            r = T.bind(t % NR)
            w[NS] = NEG
            for s in range(NS):
                w[NS] = T.max(w[NS], Lse[b, hk, s, r])
            for d in T.vectorized(DV):
                mo[d] = f32(0.0)
            if w[NS] != NEG:
                for s in range(NS):
                    w[s] = T.exp(Lse[b, hk, s, r] - w[NS])
                    for d in T.vectorized(DV):
                        mo[d] = mo[d] + w[s] * Op[b, hk, s, r, d]
                w[NS] = f32(0.0)
                for s in range(NS):
                    w[NS] = w[NS] + w[s]
                for d in T.vectorized(DV):
                    mo[d] = mo[d] / w[NS]
            for d in T.vectorized(DV):
                o[b, hk * G + r // QL, r % QL, d] = T.Cast(DT, mo[d])

    return attention_entry(cfg, body, B, QL, KL), sched
