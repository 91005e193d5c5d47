"""mobile-gpu flash attention: one work-group per block of query rows, K/V tiles staged in local memory,
online softmax in private memory.

Work-group (qb, head, batch) runs `q_block` work-items, one query row each: the row of q (scaled) and its
output accumulator live in private memory. For every tile of `kv_block` keys the whole group copies K and V
into local memory (barrier), then each work-item scores its row against the tile and folds the scores into
its running max / sum / accumulator (online softmax, Milakov & Gimelshein 2018; FlashAttention, Dao et al.
2022). Tiles wholly outside a causal/window band are never loaded. Masked keys are skipped; a row whose keys
are all masked writes 0.

Sizes: `q_block` work-items <= the device's max work-group size; the K and V tiles, kv_block * (D + Dv) fp32
values, <= its local memory (spec.opencl_limits, cost_models/specs/mobile-gpu.json). A tile that breaks
either limit is a `TileDoesNotFit` error naming the op and the limit.
"""
from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from .matmul import TileDoesNotFit
from .spec import OpenClLimits

DEFAULT_Q_BLOCK = 64
DEFAULT_KV_BLOCK = 32
NEG = -3.0e38    # running-max sentinel: finite, so exp(NEG - s) is 0 and never NaN


def attention_tiles(cfg, limits: OpenClLimits) -> tuple[int, int]:
    """(q_block, kv_block) for `cfg` within `limits`; TileDoesNotFit when a requested tile cannot fit."""
    sub = max(1, limits.subgroup_size)
    q_block = cfg.q_block or DEFAULT_Q_BLOCK
    if q_block > limits.max_work_group_size:
        raise TileDoesNotFit("attention", "Attention", f"q_block {q_block} needs {q_block} work-items, over the max "
                             f"work-group size {limits.max_work_group_size} (cost_models/specs/mobile-gpu.json opencl.portable)")
    q_block = min(q_block, -(-cfg.q_len // sub) * sub)   # no idle work-items past a short query
    per_key = 4 * (cfg.head_dim + cfg.v_head_dim)
    if cfg.kv_block:
        kv_block = cfg.kv_block
        if kv_block * per_key > limits.local_mem_bytes:
            raise TileDoesNotFit("attention", "Attention", f"kv_block {kv_block} stages {kv_block * per_key} B of K/V "
                                 f"in local memory, over the {limits.local_mem_bytes} B limit "
                                 "(cost_models/specs/mobile-gpu.json opencl.portable)")
    else:
        kv_block = DEFAULT_KV_BLOCK
        while kv_block > 8 and kv_block * per_key > limits.local_mem_bytes:
            kv_block //= 2
        if kv_block * per_key > limits.local_mem_bytes:
            raise TileDoesNotFit("attention", "Attention", f"even 8 keys of head dims {cfg.head_dim}+{cfg.v_head_dim} "
                                 f"take {8 * per_key} B of local memory, over the {limits.local_mem_bytes} B limit")
    return q_block, min(kv_block, max(8, cfg.kv_len))


def attention_primfunc(cfg, limits: OpenClLimits):
    """(PrimFunc over q, k, v[, mask], out; metadata) for a static `cfg`."""
    if cfg.dynamic:
        raise ValueError("mobile-gpu attention is built per shape (no dynamic dims)")
    if cfg.dtype not in ("float32", "float16"):
        raise ValueError(f"mobile-gpu attention takes float32/float16, not {cfg.dtype}")
    qb, kb = attention_tiles(cfg, limits)
    B, HQ, HKV, SQ, SKV, D, DV = cfg.batch, cfg.q_heads, cfg.kv_heads, cfg.q_len, cfg.kv_len, cfg.head_dim, cfg.v_head_dim
    GROUP, DT = cfg.group, cfg.dtype
    NQB, NT = -(-SQ // qb), -(-SKV // kb)
    OFF = cfg.position_offset
    WL, WR = cfg.eff_window_left, cfg.eff_window_right
    SCALE, CAP = float(cfg.scale), cfg.softcap
    KIND = cfg.mask_input
    LOAD_K, LOAD_V = -(-kb * D // qb), -(-kb * DV // qb)

    def visible(row, key):
        """Causal / window band and bounds of (row, key) as a TIR condition."""
        # rows past q_len score the clamped last row (never written): every work-item of the group then
        # takes the same path around the barriers (PoCL mis-ran the tile loop when idle rows skipped it)
        row = tirx.min(row, SQ - 1)
        cond = key < SKV
        pos = row + OFF
        if WR is not None:
            cond = tirx.all(cond, key <= pos + WR)
        if WL is not None:
            cond = tirx.all(cond, key >= pos - WL)
        return cond

    def tile_range(qbi):
        """[first, end) tiles that can hold a visible key for query block `qbi` (static per block)."""
        first = 0 if WL is None else tirx.max(0, (qbi * qb + OFF - WL) // kb)
        end = NT if WR is None else tirx.min(NT, (tirx.min(qbi * qb + qb - 1, SQ - 1) + OFF + WR) // kb + 1)
        return first, tirx.max(end, first)

    def score_mod(s):
        if CAP is not None:
            s = T.float32(CAP) * T.tanh(s / T.float32(CAP))
        return s

    # one TVMScript body for every mask kind; without a mask the unused parameter is dropped (`_kernel`)
    return _kernel(**locals()), {"kind": "opencl-flash", "q_block": qb, "kv_block": kb,
                                 "local_bytes": 4 * kb * (D + DV), "work_group": qb}


def _kernel(B, HQ, HKV, SQ, SKV, D, DV, GROUP, DT, NQB, NT, OFF, WL, WR, SCALE, CAP, KIND, LOAD_K, LOAD_V,
            qb, kb, visible, tile_range, score_mod, cfg, **_):
    """The TVMScript kernel for one static configuration."""
    MB = MH = 1
    mdt = "uint8" if KIND == "bool" else "float32"
    if KIND != "none":
        # the plugin sets `attention_mask_full`, so the core hands this kernel a (B, Hq, Sq, Skv) mask: a
        # broadcast (1, 1, Sq, Skv) / (Sq, Skv) mask is expanded by the core's mask kernel first (indexing a
        # broadcast mask at (b, h) read past its end: the mobile-gpu broadcast-mask bug of issue 12)
        MB, MH = cfg.batch, cfg.q_heads

    @T.prim_func(private=True)
    def kernel(q: T.Buffer((B, HQ, SQ, D), DT), k: T.Buffer((B, HKV, SKV, D), DT), v: T.Buffer((B, HKV, SKV, DV), DT),
               mask: T.Buffer((MB, MH, SQ, SKV), mdt), out: T.Buffer((B, HQ, SQ, DV), DT)):
        for qbi in T.thread_binding(NQB, thread="blockIdx.x"):
            for h in T.thread_binding(HQ, thread="blockIdx.y"):
                for b in T.thread_binding(B, thread="blockIdx.z"):
                    for tx in T.thread_binding(qb, thread="threadIdx.x"):
                        ks = T.alloc_buffer((kb, D), "float32", scope="shared")
                        vs = T.alloc_buffer((kb, DV), "float32", scope="shared")
                        qr = T.alloc_buffer((D,), "float32", scope="local")
                        acc = T.alloc_buffer((DV,), "float32", scope="local")
                        st = T.alloc_buffer((4,), "float32", scope="local")   # max, sum, score, correction
                        for d in range(D):
                            qr[d] = T.Cast("float32", q[b, h, T.min(qbi * qb + tx, SQ - 1), d]) * T.float32(SCALE)
                        for d in range(DV):
                            acc[d] = T.float32(0)
                        st[0] = T.float32(NEG)
                        st[1] = T.float32(0)
                        for t in range(tile_range(qbi)[0], tile_range(qbi)[1]):
                            T.tvm_storage_sync("shared")
                            for e in range(LOAD_K):
                                if e * qb + tx < kb * D:
                                    ks[(e * qb + tx) // D, (e * qb + tx) % D] = T.Cast(
                                        "float32", k[b, h // GROUP, T.min(t * kb + (e * qb + tx) // D, SKV - 1), (e * qb + tx) % D])
                            for e in range(LOAD_V):
                                if e * qb + tx < kb * DV:
                                    vs[(e * qb + tx) // DV, (e * qb + tx) % DV] = T.Cast(
                                        "float32", v[b, h // GROUP, T.min(t * kb + (e * qb + tx) // DV, SKV - 1), (e * qb + tx) % DV])
                            T.tvm_storage_sync("shared")
                            for j in range(kb):
                                if _keep(visible(qbi * qb + tx, t * kb + j), KIND, mask, b, h, T.min(qbi * qb + tx, SQ - 1),
                                         t * kb + j, MB, MH, SKV):
                                    st[2] = T.float32(0)
                                    for d in range(D):
                                        st[2] = st[2] + qr[d] * ks[j, d]
                                    st[2] = _add_mask(score_mod(st[2]), KIND, mask, b, h, T.min(qbi * qb + tx, SQ - 1), t * kb + j, MB, MH, SKV)
                                    st[3] = T.exp(st[0] - T.max(st[0], st[2]))
                                    st[0] = T.max(st[0], st[2])
                                    st[2] = T.exp(st[2] - st[0])
                                    st[1] = st[1] * st[3] + st[2]
                                    for d in range(DV):
                                        acc[d] = acc[d] * st[3] + st[2] * vs[j, d]
                        if qbi * qb + tx < SQ:
                            for d in range(DV):
                                out[b, h, qbi * qb + tx, d] = T.Cast(DT, T.if_then_else(st[1] > T.float32(0), acc[d] / st[1], T.float32(0)))

    func = kernel
    if KIND == "none":   # drop the unused mask parameter: the plan passes (q, k, v, out)
        func = _without_param(func, 3)
    return func


def _keep(cond, kind, mask, b, h, row, key, mb, mh, skv):
    """The key's visibility: band and bounds, a bool mask's keep bit, an additive mask's value above -3e38.

    Masked keys are skipped in this one condition, before the score: a second, score-dependent branch inside
    it (isfinite(score) after adding a -inf bias) made PoCL 3.1 return wrong rows once work-items of a group
    diverged there (measured: -inf bias rows off by up to 3.3, a -1e30 bias exact)."""
    if kind == "none":
        return cond
    m = mask[b if mb > 1 else 0, h if mh > 1 else 0, row, tirx.min(key, skv - 1)]
    if kind == "bool":
        return tirx.all(cond, m != tirx.const(0, "uint8"))
    return tirx.all(cond, m > tirx.const(NEG, "float32"))


def _add_mask(s, kind, mask, b, h, row, key, mb, mh, skv):
    if kind != "additive":
        return s
    return s + mask[b if mb > 1 else 0, h if mh > 1 else 0, row, tirx.min(key, skv - 1)]


def _without_param(func, index: int):
    """`func` without its parameter `index` (a buffer its body never reads)."""
    params = list(func.params)
    bmap = dict(func.buffer_map) if hasattr(func, "buffer_map") else None
    del params[index]
    return tirx.PrimFunc(params, func.body, func.ret_type, bmap, func.attrs) if bmap is not None else \
        tirx.PrimFunc(params, func.body, attrs=func.attrs)


__all__ = ["attention_primfunc", "attention_tiles"]
