"""Shared TIR building blocks (T.macro factories) for the prefill and decode kernels.

Register tiles are split into two halves of < 1 KiB each: TVM puts allocations
under 1 KiB on the stack (alloca), which LLVM promotes to zmm registers; larger
ones go to the workspace allocator and stay in memory. Build with
``tirx.disable_storage_rewrite`` so the halves are not merged back together.
"""
from __future__ import annotations

from ..target import vector_width_bits

from tvm.script import tirx as T

from .mathfn import LOG2E, NEG_INF, f32, fast_exp2


# rows of the QK and PV register tiles. 8 fits AVX-512's 32 zmm; AVX2 has 16 ymm and each 16-lane row
# half is two of them, so 8 rows spill. Measured on this project's 2-core Zen 3 (AVX2), MHA H8 N1024 D64
# prefill: QK/PV rows 8/8 69.8 ms, 4/4 50.8, 2/4 37.9, 2/2 28.4, 1/2 35.8, 2/1 36.8 ms -> 2 there
REG_ROWS = 8 if vector_width_bits() >= 512 else 2


def vec_width(n: int, widths=(16, 8, 4, 2, 1)) -> int:
    for w in widths:
        if n % w == 0:
            return w
    return 1


def make_online_softmax(NR: int, BK: int):
    """S[NR, BK] (scores, -inf = masked) -> P in place; updates running max mrow,
    running sum lrow and sets alpha = exp(m_old - m_new) per row."""
    NEG = f32(NEG_INF)
    L2E = f32(LOG2E)
    assert BK % 16 == 0

    @T.macro
    def online_softmax(S, mrow, lrow, alpha, red, sc):
        for i in range(NR):
            for jv in T.vectorized(16):
                red[jv] = NEG
            for jc in range(BK // 16):
                for jv in T.vectorized(16):
                    red[jv] = T.max(red[jv], S[i, jc * 16 + jv])
            sc[0] = mrow[i]
            for jv in T.unroll(16):
                sc[0] = T.max(sc[0], red[jv])
            # sc[0]: new running max (may be -inf); sc[1]: finite reference for exponents
            sc[1] = T.Select(sc[0] == NEG, f32(0.0), sc[0])
            alpha[i] = fast_exp2((mrow[i] - sc[1]) * L2E)
            mrow[i] = sc[0]
            sc[1] = sc[1] * L2E
            for jv in T.vectorized(16):
                red[jv] = f32(0.0)
            for jc in range(BK // 16):
                for jv in T.vectorized(16):
                    S[i, jc * 16 + jv] = fast_exp2(S[i, jc * 16 + jv] * L2E - sc[1])
                    red[jv] = red[jv] + S[i, jc * 16 + jv]
            sc[0] = f32(0.0)
            for jv in T.unroll(16):
                sc[0] = sc[0] + red[jv]
            lrow[i] = lrow[i] * alpha[i] + sc[0]

    return online_softmax


def make_pv_update(NR: int, R2: int, W2: int, DV: int):
    """acc[NR, DV] = alpha * acc + S[NR, :jl] @ v[b, hk, k0:k0+jl, :]  (register tile R2 x W2)."""
    HW = W2 // 2
    assert NR % R2 == 0 and DV % W2 == 0 and W2 % 2 == 0

    @T.macro
    def pv_update(S, acc, alpha, v, b, hk, k0, jl):
        for ib in range(NR // R2):
            for dc in range(DV // W2):
                oa = T.decl_buffer((R2, HW), "float32")
                ob = T.decl_buffer((R2, HW), "float32")
                for i in T.unroll(R2):
                    for dv in T.vectorized(HW):
                        oa[i, dv] = acc[ib * R2 + i, dc * W2 + dv] * alpha[ib * R2 + i]
                        ob[i, dv] = acc[ib * R2 + i, dc * W2 + HW + dv] * alpha[ib * R2 + i]
                for j in range(jl):
                    for i in T.unroll(R2):
                        for dv in T.vectorized(HW):
                            oa[i, dv] = oa[i, dv] + S[ib * R2 + i, j] * T.Cast(
                                "float32", v[b, hk, k0 + j, dc * W2 + dv])
                            ob[i, dv] = ob[i, dv] + S[ib * R2 + i, j] * T.Cast(
                                "float32", v[b, hk, k0 + j, dc * W2 + HW + dv])
                for i in T.unroll(R2):
                    for dv in T.vectorized(HW):
                        acc[ib * R2 + i, dc * W2 + dv] = oa[i, dv]
                        acc[ib * R2 + i, dc * W2 + HW + dv] = ob[i, dv]

    return pv_update


def make_pv_update_scalar(NR: int, DV: int):
    """Fallback for odd value dims (no vector tile)."""

    @T.macro
    def pv_update(S, acc, alpha, v, b, hk, k0, jl):
        for i in range(NR):
            for dv in range(DV):
                acc[i, dv] = acc[i, dv] * alpha[i]
            for j in range(jl):
                for dv in range(DV):
                    acc[i, dv] = acc[i, dv] + S[i, j] * T.Cast("float32", v[b, hk, k0 + j, dv])

    return pv_update


def pick_pv(NR: int, DV: int, max_rows: int = 8):
    w2 = next((w for w in (32, 16, 8, 4, 2) if DV % w == 0), 0)
    if w2 == 0:
        return make_pv_update_scalar(NR, DV), (0, 0)
    # keep accumulators within ~16 zmm: R2 * (W2/16) <= 16
    r2 = max_rows
    while NR % r2:
        r2 -= 1
    return make_pv_update(NR, r2, w2, DV), (r2, w2)
