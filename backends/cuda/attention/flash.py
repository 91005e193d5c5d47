"""Flash attention for the cuda target as one TIR PrimFunc (CUDA-core FMA math, fp32 accumulation).

Grid: x = blocks of BQ packed query rows, y = batch x KV head, z = KV splits. GQA query-head packing: packed
row r of KV head g is query position r // G of head g * G + r % G, so one K/V tile serves all G heads.
Per block: the Q tile is staged in shared memory once; for each BK-key step inside the block's visible
range (causal / window block skipping), K and V tiles are staged in shared memory, every thread scores
BK / TPR keys of its row, the online softmax (running max and sum, exp2 domain) lives in registers with
row max/sum combined across the row's TPR threads through shared memory, and each thread accumulates
Dv / TPR output columns. Score modifiers in the CPU kernels' order: scale, softcap, additive mask, then
causal / window / boolean masking. Rows whose keys are all masked give 0.

Split-KV (decode): z > 1 blocks write normalized partial outputs and their log2-sum-exp to a device
workspace; a second kernel in the same PrimFunc combines them.
"""
from __future__ import annotations

import math

from tvm import tirx
from tvm.script import tirx as T

from ...core.te_attention import within_window
from .resources import FlashTile, pad

LOG2E = math.log2(math.e)
NEG = -1.0e30   # a masked score (finite, so the max/exp arithmetic never makes NaN)


def _ceil(a, b):
    return (a + b - 1) // b


def sizes(cfg) -> tuple:
    """(batch, q_len, kv_len): ints, or int32 variables for the dims in cfg.dynamic."""
    return tuple(tirx.Var(n, "int32") if n in cfg.dynamic else getattr(cfg, n) for n in ("batch", "q_len", "kv_len"))


def f32(x):
    return T.Cast("float32", x)


def score_mods(cfg, off):
    """(score, visible) of both flash kernels (this one and flash_tc.py). score(raw, M, b, hq, pos, kp): the score
    modifiers in the CPU kernels' order (scale, softcap, additive mask); visible(M, b, hq, pos, kp, k_hi, row_ok):
    whether query position pos of head hq sees key kp (its row exists, kp < k_hi, the causal / window band with
    `off` = the bottom-right alignment offset, the boolean mask)."""
    scale, cap, mask = float(cfg.scale), cfg.softcap, cfg.mask_input
    wl, wr = cfg.eff_window_left, cfg.eff_window_right

    def score(raw, M, b, hq, pos, kp):
        s = raw * T.float32(scale)
        if cap is not None:
            s = T.float32(cap) * T.tanh(s / T.float32(cap))
        if mask == "additive":
            s = s + M[T.floormod(b, M.shape[0]), T.floormod(hq, M.shape[1]), pos, kp]
        return s

    def visible(M, b, hq, pos, kp, k_hi, row_ok):
        ok = within_window(tirx.all(row_ok, kp < k_hi), kp, pos + off, wl, wr, both=tirx.all)
        if mask == "bool":
            ok = tirx.all(ok, M[T.floormod(b, M.shape[0]), T.floormod(hq, M.shape[1]), pos, kp] != T.uint8(0))
        return ok

    return score, visible


def flash_entry(cfg, dims: tuple, body, name: str):
    """The PrimFunc `name` over (q, k, v[, mask], out) of a flash kernel for `cfg` (both kernels take this form):
    the buffers matched with the body's (batch, q_len, kv_len) `dims`, then `body(Q, K, V, M, O)` (M is None
    without a mask input)."""
    B, QL, KL = dims
    HQ, HKV, D, DV, DT = cfg.q_heads, cfg.kv_heads, cfg.head_dim, cfg.v_head_dim, cfg.dtype
    MDT = "uint8" if cfg.mask_input == "bool" else "float32"
    if cfg.mask_input != "none":
        @T.prim_func(s_tir=True)
        def flash(q: T.handle, k: T.handle, v: T.handle, mask: T.handle, o: T.handle):
            T.func_attr({"tir.noalias": True})
            Q = T.match_buffer(q, (B, HQ, QL, D), DT)
            K = T.match_buffer(k, (B, HKV, KL, D), DT)
            V = T.match_buffer(v, (B, HKV, KL, DV), DT)
            mb = T.int32()
            mh = T.int32()
            M = T.match_buffer(mask, (mb, mh, QL, KL), MDT)
            O = T.match_buffer(o, (B, HQ, QL, DV), DT)
            body(Q, K, V, M, O)
    else:
        @T.prim_func(s_tir=True)
        def flash(q: T.handle, k: T.handle, v: T.handle, o: T.handle):
            T.func_attr({"tir.noalias": True})
            Q = T.match_buffer(q, (B, HQ, QL, D), DT)
            K = T.match_buffer(k, (B, HKV, KL, D), DT)
            V = T.match_buffer(v, (B, HKV, KL, DV), DT)
            O = T.match_buffer(o, (B, HQ, QL, DV), DT)
            body(Q, K, V, None, O)
    return flash.with_attr("global_symbol", name)


def flash_primfunc(cfg, tile: FlashTile, splits: int = 1, smem: str = "shared.dyn", v_from_k: bool = False):
    """The PrimFunc (q, k, v[, mask], out) for `cfg` with `tile` and `splits` KV splits. `smem`: the scope of the
    shared tiles ("shared.dyn": one dynamic allocation, above 48 KB with the opt-in TVM's runtime makes).
    `v_from_k`: V is the first v_head_dim columns of K (absorbed MLA: the latent is K's first part and V), so the
    staged K tile serves as the V tile and `v` is never read (it stays in the signature the core calls)."""
    B, QL, KL = sizes(cfg)
    HQ, HKV, G, D, DV, DT = cfg.q_heads, cfg.kv_heads, cfg.group, cfg.head_dim, cfg.v_head_dim, cfg.dtype
    BQ, BK, TPR, NT = tile.q_block, tile.kv_block, tile.tpr, tile.threads
    JJ, CC = BK // TPR, _ceil(DV, TPR)
    PD = pad(DT)
    ROWS = QL * G
    NQB = _ceil(ROWS, BQ)
    OFF = KL - QL if cfg.alignment == "bottom_right" else 0
    WL, WR = cfg.eff_window_left, cfg.eff_window_right
    S = splits
    CHUNK = _ceil(KL, S)
    MASK = cfg.mask_input
    QLOAD, KLOAD, VLOAD = _ceil(BQ * D, NT), _ceil(BK * D, NT), _ceil(BK * DV, NT)
    SYNC = "shared.dyn" if smem == "shared.dyn" else "shared"
    CT = min(128, max(32, DV))   # combine kernel threads

    score, visible = score_mods(cfg, OFF)

    @T.macro
    def combine(Opart, Lpart, O):
        for row in T.thread_binding(B * HQ * QL, thread="blockIdx.x"):
            for tx in T.thread_binding(CT, thread="threadIdx.x"):
                with T.sblock("combine"):
                    T.reads()
                    T.writes()
                    st = T.sblock_alloc_buffer((3,), "float32", scope="local")
                    b: T.let[T.int32] = row // (HQ * QL)
                    h: T.let[T.int32] = row // QL % HQ
                    p: T.let[T.int32] = row % QL
                    st[0] = T.float32(NEG)
                    for s in T.serial(S):
                        st[0] = T.max(st[0], Lpart[s, b, h, p])
                    for c in T.serial(_ceil(DV, CT)):
                        if c * CT + tx < DV:
                            st[1] = T.float32(0)
                            st[2] = T.float32(0)
                            for s in T.serial(S):
                                if Lpart[s, b, h, p] > T.float32(NEG / 2):
                                    st[1] = st[1] + T.exp2(Lpart[s, b, h, p] - st[0])
                                    st[2] = st[2] + T.exp2(Lpart[s, b, h, p] - st[0]) * Opart[s, b, h, p, c * CT + tx]
                            O[b, h, p, c * CT + tx] = T.Cast(DT, T.if_then_else(st[1] > T.float32(0),
                                                                               st[2] / st[1], T.float32(0)))

    @T.macro
    def body(Q, K, V, M, O):
        Opart = T.alloc_buffer((S, B, HQ, QL, DV), "float32")
        Lpart = T.alloc_buffer((S, B, HQ, QL), "float32")
        for bx in T.thread_binding(NQB, thread="blockIdx.x"):
            for by in T.thread_binding(B * HKV, thread="blockIdx.y"):
                for bz in T.thread_binding(S, thread="blockIdx.z"):
                    for tx in T.thread_binding(NT, thread="threadIdx.x"):
                        with T.sblock("flash"):
                            T.reads()
                            T.writes()
                            Qs = T.sblock_alloc_buffer((BQ, D + PD), DT, scope=smem)
                            Ks = T.sblock_alloc_buffer((BK, D + PD), DT, scope=smem)
                            Vs = T.sblock_alloc_buffer((BK if not v_from_k else 1, DV + PD), DT, scope=smem)
                            Ps = T.sblock_alloc_buffer((BQ, BK + 1), "float32", scope=smem)
                            red = T.sblock_alloc_buffer((BQ, TPR), "float32", scope=smem)
                            acc = T.sblock_alloc_buffer((CC,), "float32", scope="local")
                            sc = T.sblock_alloc_buffer((JJ,), "float32", scope="local")
                            st = T.sblock_alloc_buffer((6,), "float32", scope="local")   # m, l, tmp, m_new, alpha, sum
                            b: T.let[T.int32] = by // HKV
                            hk: T.let[T.int32] = by % HKV
                            r: T.let[T.int32] = tx // TPR
                            ln: T.let[T.int32] = tx % TPR
                            grow: T.let[T.int32] = bx * BQ + r
                            row_ok: T.let[T.bool] = grow < ROWS
                            pos: T.let[T.int32] = T.min(grow, ROWS - 1) // G
                            hq: T.let[T.int32] = hk * G + T.min(grow, ROWS - 1) % G
                            # keys any row of this block may see (causal/window block skipping), this split's part
                            p_lo: T.let[T.int32] = (bx * BQ) // G + OFF
                            p_hi: T.let[T.int32] = (T.min(bx * BQ + BQ, ROWS) - 1) // G + OFF
                            k_lo: T.let[T.int32] = T.max(T.max(0, p_lo - WL) if WL is not None else 0, bz * CHUNK)
                            k_hi: T.let[T.int32] = T.min(T.min(KL, p_hi + WR + 1) if WR is not None else KL,
                                                         bz * CHUNK + CHUNK)
                            for i in T.serial(QLOAD):
                                idx: T.let[T.int32] = i * NT + tx
                                qr: T.let[T.int32] = T.min(bx * BQ + idx // D, ROWS - 1)
                                if idx < BQ * D:
                                    Qs[idx // D, idx % D] = Q[b, hk * G + qr % G, qr // G, idx % D]
                            st[0] = T.float32(NEG)
                            st[1] = T.float32(0)
                            for c in T.serial(CC):
                                acc[c] = T.float32(0)
                            for t in T.serial(_ceil(T.max(k_hi - k_lo, 0), BK)):
                                k0: T.let[T.int32] = k_lo + t * BK
                                T.tvm_storage_sync(SYNC)
                                for i in T.serial(KLOAD):
                                    idx: T.let[T.int32] = i * NT + tx
                                    if idx < BK * D:
                                        Ks[idx // D, idx % D] = K[b, hk, T.min(k0 + idx // D, KL - 1), idx % D]
                                if not v_from_k:
                                    for i in T.serial(VLOAD):
                                        idx: T.let[T.int32] = i * NT + tx
                                        if idx < BK * DV:
                                            Vs[idx // DV, idx % DV] = V[b, hk, T.min(k0 + idx // DV, KL - 1),
                                                                         idx % DV]
                                T.tvm_storage_sync(SYNC)
                                # scores of this thread's keys (j = ln + jj * TPR), masked ones = NEG
                                st[2] = T.float32(NEG)
                                for jj in T.serial(JJ):
                                    st[5] = T.float32(0)
                                    for d in T.serial(D):
                                        st[5] = st[5] + f32(Qs[r, d]) * f32(Ks[ln + jj * TPR, d])
                                    sc[jj] = T.if_then_else(
                                        visible(M, b, hq, pos, k0 + ln + jj * TPR, k_hi, row_ok),
                                        score(st[5], M, b, hq, pos, k0 + ln + jj * TPR) * T.float32(LOG2E),
                                        T.float32(NEG))
                                    st[2] = T.max(st[2], sc[jj])
                                red[r, ln] = st[2]
                                T.tvm_storage_sync(SYNC)
                                st[3] = st[0]
                                for l2 in T.serial(TPR):
                                    st[3] = T.max(st[3], red[r, l2])
                                T.tvm_storage_sync(SYNC)
                                st[4] = T.exp2(st[0] - st[3])
                                st[2] = T.float32(0)
                                for jj in T.serial(JJ):
                                    Ps[r, ln + jj * TPR] = T.if_then_else(sc[jj] > T.float32(NEG / 2),
                                                                          T.exp2(sc[jj] - st[3]), T.float32(0))
                                    st[2] = st[2] + Ps[r, ln + jj * TPR]
                                red[r, ln] = st[2]
                                T.tvm_storage_sync(SYNC)
                                st[5] = T.float32(0)
                                for l2 in T.serial(TPR):
                                    st[5] = st[5] + red[r, l2]
                                st[1] = st[1] * st[4] + st[5]
                                st[0] = st[3]
                                for c in T.serial(CC):
                                    acc[c] = acc[c] * st[4]
                                for j in T.serial(BK):
                                    for c in T.serial(CC):
                                        if ln + c * TPR < DV:
                                            acc[c] = acc[c] + Ps[r, j] * f32(
                                                Ks[j, ln + c * TPR] if v_from_k else Vs[j, ln + c * TPR])
                            st[2] = T.if_then_else(st[1] > T.float32(0), T.float32(1) / st[1], T.float32(0))
                            if row_ok:
                                for c in T.serial(CC):
                                    if ln + c * TPR < DV:
                                        if S == 1:
                                            O[b, hq, pos, ln + c * TPR] = T.Cast(DT, acc[c] * st[2])
                                        else:
                                            Opart[bz, b, hq, pos, ln + c * TPR] = acc[c] * st[2]
                                if S > 1:
                                    if ln == 0:
                                        Lpart[bz, b, hq, pos] = T.if_then_else(
                                            st[1] > T.float32(0), st[0] + T.log2(st[1]), T.float32(NEG))
        if S > 1:
            combine(Opart, Lpart, O)

    return flash_entry(cfg, (B, QL, KL), body, "flash")
