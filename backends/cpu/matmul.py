"""Scheduled matrix products for the CPU backend: Linear with packed weights and batched MatMul.

Why packing: with B stored as 32-wide column panels [N/32, K, 32] the inner loop reads one
contiguous 128-byte row of the panel per k, so an 8 x 32 register tile (16 AVX-512
accumulators) streams B from L1/L2 while A is broadcast; measured here ~105 GFLOP/s fp32
per core and 200-223 on both cores for M 256-512, K/N 512-2816 (torch/MKL ~193), where
TVM's unscheduled default is ~100x slower. (Both cores only with TVM's pool sized right: see
backends/cpu/__init__.py.)
Weights are packed once at load time; activations x activations use the same tile over
an unpacked B (rows of B are contiguous in n, so the vector loads stay contiguous).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from ..core.symbolic import is_one, static_int
from .packing import GATE_COLS, PANEL, pack_gated, pack_weight, packed_shape  # noqa: F401  (numpy only)
from .target import vector_width_bits

# rows of the register tile: 8 x 32 fp32 = 16 AVX-512 accumulators (of 32 zmm). With AVX2 (16 ymm) that
# tile needs 32 accumulators and spills: measured on a 2-core Zen 3 (AVX2), Linear 256x512x512: 8 rows 67,
# 4 rows 134, 2 rows 160 GFLOP/s (6x16: 118) -> 2 rows there
TILE_ROWS = 8 if vector_width_bits() >= 512 else 2


def matmul_compute(a: te.Tensor, b: te.Tensor, n: int, packed: bool, name: str) -> te.Tensor:
    """fp32 accumulator C (Bt, M, N) = A (Ba, M, K) @ B, where B is packed panels (NP, K, 32)
    shared by every batch, or (Bb, K, N) with Bb in {1, Bt}."""
    ba, m, k_len = a.shape
    bb = b.shape[0]
    if packed:
        bt = ba
    elif is_one(ba):
        bt = bb
    else:
        bt = ba   # equal to bb, or bb is 1
    k = te.reduce_axis((0, k_len), "k")
    # a symbolic row count (shape-generic build): the accumulator covers whole row tiles (rows past m
    # re-read row m-1), so the register tile has a static shape (a predicated tile cannot live in registers)
    rows = m if static_int(m) is not None else (m + TILE_ROWS - 1) // TILE_ROWS * TILE_ROWS

    def a_at(bi, mi, ki):
        if rows is not m:  # rows past m repeat row m-1: wasted work in the last tile, never written out
            v = a[0 if is_one(ba) else bi, tirx.min(mi, m - 1), ki]
            return v.astype("float32") if str(a.dtype) != "float32" else v
        v = a[0 if is_one(ba) else bi, mi, ki]
        return v.astype("float32") if v.dtype != "float32" else v

    if packed:
        def b_at(bi, ki, ni):
            v = b[ni // PANEL, ki, ni % PANEL]
            return v.astype("float32") if v.dtype != "float32" else v
    else:
        def b_at(bi, ki, ni):
            v = b[0 if is_one(bb) else bi, ki, ni]
            return v.astype("float32") if v.dtype != "float32" else v

    return te.compute((bt, rows, n), lambda bi, mi, ni: te.sum(a_at(bi, mi, k) * b_at(bi, k, ni), axis=k), name=name)


def _largest_divisor(n: int, choices) -> int:
    for c in choices:
        if n % c == 0:
            return c
    return 1


def schedule_matmul(sch: s_tir.Schedule, root: str, acc: str, max_cols: int = PANEL) -> None:
    """Register-tile the accumulator block `acc` under the epilogue block `root` (both (Bt, M, N)).

    Tile rows/cols divide M/N exactly (no predicates, so the columns vectorize); the
    (batch, column panel, row tile) loops are fused and run in parallel. `max_cols` bounds the
    output tile's columns (gated matmuls: 16 outputs read a 32-column accumulator tile).
    """
    from .schedules import inline_injective

    inline_injective(sch, {root})
    o, c = sch.get_sblock(root), sch.get_sblock(acc)
    b, m, n = sch.get_loops(o)
    m_len, n_len = (static_int(sch.get(x).extent) for x in (m, n))
    # a symbolic row count (shape-generic build) takes full 8-row tiles and a guarded tail
    mr = TILE_ROWS if m_len is None else _largest_divisor(m_len, range(TILE_ROWS, 0, -1))
    if n_len is None:  # symbolic columns (activation x activation products over a dynamic length)
        raise ValueError("register tiles need a static column count")
    # a column tile of 1 leaves no vector loop to reorder: any exact divisor <= PANEL vectorizes (LLVM pads the tail)
    nr = _largest_divisor(n_len, tuple(c for c in (PANEL, 16, 8) + tuple(range(PANEL - 1, 0, -1)) if c <= max_cols))
    mo, mi = sch.split(m, [None, mr])
    no, ni = sch.split(n, [None, nr])
    sch.reorder(b, no, mo, mi, ni)
    sch.compute_at(c, mo)
    sch.set_scope(c, 0, "local")
    # the tile's own loops under (b, no, mo); compute_at drops a row or column loop of extent 1 (decode rows, N = 1)
    own = sch.get_loops(c)[3:]
    cm = own[0] if mr > 1 else None
    cn = own[-2] if nr > 1 else None
    ck = own[-1]
    sch.reorder(ck, *[x for x in (cm, cn) if x is not None])
    if cm is not None:
        sch.unroll(cm)
    if cn is not None:
        sch.vectorize(cn)
        sch.vectorize(ni)
    fused = sch.fuse(b, no, mo)
    sch.parallel(fused)
    sch.decompose_reduction(c, ck)
