"""Scheduled matrix products for the CPU backend: Linear with packed weights and batched MatMul.

Why packing: with B stored as 32-wide column panels [N/32, K, 32] the inner loop reads one
contiguous 128-byte row of the panel per k, so a rows x 32 register tile (8 x 32 = 16 AVX-512
accumulators) streams B from L1/L2 while A is broadcast. The tile is the one the tile pass recorded for the
node (graph.metadata["tiling"], register_tile: True), else the same rule (cost_models/register_tile.py)
applied here: rows and columns from the Capabilities' register count, vector width and panel width.
Measured on this 2-core Zen 4 host (2026-12-07, load 4-8 from other sessions): fp32 peak 118.1 GFLOP/s per
core (benchmarks/cpu_peak.py: 512-bit FMAs double-pumped, zmm = ymm = 32 FLOP/cycle); one thread, kernel CPU
time, the Llama block's Linear/gated/epilogue shapes 88-96% of it (benchmarks/cpu_matmul.py --threads 1); the
inner loop is FMA-bound (16 FMAs, 2 panel loads, 8 broadcasts per k). Row-blocking A for L2 (64..128-row
blocks, M 512 x K 768-1024) and 16-column tiles measured no better. (Both cores only with TVM's pool sized
right: see backends/cpu/target.py ensure_thread_pool.)
Weights are packed once at load time; activations x activations use the same tile over
an unpacked B (rows of B are contiguous in n, so the vector loads stay contiguous).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from ..core.symbolic import is_one, static_int
from ...cost_models.register_tile import max_tile_rows, register_tile
from .capabilities import cpu_capabilities
from .packing import GATE_COLS, PANEL, pack_gated, pack_weight, packed_shape  # noqa: F401  (numpy only)

# rows of the register tile of a symbolic row count (shape-generic builds pad M to whole tiles): the tallest
# tile the register file holds (8 x 32 = 16 AVX-512 accumulators of 32 zmm; 2 x 32 = 8 of 16 ymm with AVX2,
# where 8 rows spilled: measured on a 2-core Zen 3, Linear 256x512x512: 8 rows 67, 2 rows 160 GFLOP/s)
TILE_ROWS = max_tile_rows(cpu_capabilities())


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
    # a static row count that is no multiple of TILE_ROWS is padded the same way, so a tile of TILE_ROWS rows
    # over it is in bounds (register_tile picks it for prime lengths; exact divisors compute no padded row)
    m_static = static_int(m)
    if m_static is None:
        rows = (m + TILE_ROWS - 1) // TILE_ROWS * TILE_ROWS
    else:
        rows = m if m_static % TILE_ROWS == 0 else -(-m_static // TILE_ROWS) * TILE_ROWS

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


def tile_for(m_len: int | None, n_len: int, max_cols: int = PANEL, recorded: dict | None = None) -> tuple[int, int]:
    """(rows, output columns) of the register tile: the tile pass's record when it is a register tile this
    kernel can build for these extents (rows divide M, or M symbolic and rows = TILE_ROWS; columns divide N),
    else the same rule on this machine's Capabilities. `max_cols` bounds the output columns (gated: 16 outputs
    per 32-column accumulator tile, recorded as the accumulator tile)."""
    if recorded and recorded.get("register_tile"):
        rows, cols = int(recorded["m_block"]), min(int(recorded["n_block"]), max_cols)
        # rows that divide M, or TILE_ROWS over the padded accumulator (matmul_compute pads M to its multiple)
        rows_ok = rows == TILE_ROWS or (m_len is not None and 0 < rows < TILE_ROWS and m_len % rows == 0)
        if rows_ok and 0 < cols and n_len % cols == 0:
            return rows, cols
    return register_tile(m_len, n_len, cpu_capabilities(), max_cols)


def schedule_matmul(sch: s_tir.Schedule, root: str, acc: str, max_cols: int = PANEL,
                    recorded: dict | None = None) -> tuple[int, int]:
    """Register-tile the accumulator block `acc` under the epilogue block `root` (both (Bt, M, N)); returns the
    (rows, output columns) built.

    The tile (`tile_for`: the recorded one, else the Capabilities rule) divides M/N exactly (no predicates,
    so the columns vectorize); the (batch, column panel, row tile) loops are fused and run in parallel.
    `max_cols` bounds the output tile's columns (gated matmuls: 16 outputs read a 32-column accumulator tile).
    """
    from .schedules import inline_injective

    inline_injective(sch, {root})
    o, c = sch.get_sblock(root), sch.get_sblock(acc)
    b, m, n = sch.get_loops(o)
    m_len, n_len = (static_int(sch.get(x).extent) for x in (m, n))
    if n_len is None:  # symbolic columns (activation x activation products over a dynamic length)
        raise ValueError("register tiles need a static column count")
    # a symbolic row count (shape-generic build) takes full TILE_ROWS tiles over the padded accumulator
    mr, nr = tile_for(m_len, n_len, max_cols, recorded)
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
    return mr, nr
