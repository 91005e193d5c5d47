"""NEON matmuls for mobile-cpu: weights in 16-column panels, 6 x 16 / 4 x 16 register tiles.

Register budget (AdvSIMD has 32 x 128-bit V registers): a tile of R rows x 16 fp32 columns holds
R x 4 accumulators; each k step loads one 16-wide panel row (4 registers) and broadcasts R values of A
(by-element FMLA reads them from one register). 6 x 16 = 24 accumulators + 4 + 1 fits the 32 registers
(the shape of the classic aarch64 sgemm micro-kernels); 4 x 16 is used where 6 does not divide M.
A 64 KB L1d holds a K = 512 panel slice (512 x 16 x 4 B = 32 KB) beside the A rows it streams.
Weights are repacked once at load; activation x activation products read B as it is (rows contiguous in n).
"""
from __future__ import annotations

import numpy as np
from tvm import s_tir, te, tirx

from ...core.symbolic import is_one, static_int
from .schedules import inline_producers
from .target import fp32_lanes, vector_registers

PANEL_REGS = 4                        # NEON registers across one panel row


def panel_width() -> int:
    """Columns of one packed weight panel: 4 NEON registers of fp32 (16)."""
    return PANEL_REGS * fp32_lanes()


def tile_row_choices() -> tuple[int, ...]:
    """Register-tile row counts, largest first, that fit the accumulators + one panel row + a broadcast."""
    fit = (vector_registers() - PANEL_REGS - 1) // PANEL_REGS     # 6 on AdvSIMD
    return tuple(r for r in (fit, 4, 2, 1) if r <= fit)


PAD_ROWS = 4   # a symbolic row count is padded to whole 4-row tiles


def _f32(x):
    return x if x.dtype == "float32" else x.astype("float32")


class NeonMatmul:
    """MatmulStrategy of mobile-cpu (backends/core/plugin.py)."""

    def __init__(self):
        self.panel = panel_width()
        self.gate_cols = self.panel // 2   # gated panels: 8 gate columns then the same 8 up columns

    # ---- weight layout (numpy, at load) ----------------------------------------------------------
    def packed_shape(self, k: int, n: int) -> tuple[int, ...]:
        return ((n + self.panel - 1) // self.panel, k, self.panel)

    def pack_weight(self, w: np.ndarray) -> np.ndarray:
        """(K, N) -> (panels, K, 16): panel p holds columns 16p..16p+15, zero-filled past N."""
        k, n = w.shape
        panels = self.packed_shape(k, n)[0]
        out = np.zeros((panels, k, self.panel), dtype=w.dtype)
        for p in range(panels):
            cols = w[:, p * self.panel:(p + 1) * self.panel]
            out[p, :, :cols.shape[1]] = cols
        return out

    def pack_gated(self, w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray:
        """(K, N) gate and up weights -> (N/8, K, 16): 8 gate columns followed by the same 8 up columns."""
        g = self.gate_cols
        if w_gate.shape != w_up.shape or w_gate.shape[1] % g:
            raise ValueError(f"mobile-cpu gated packing needs two (K, N) weights with N % {g} == 0; "
                             f"got {w_gate.shape} and {w_up.shape}")
        k, n = w_gate.shape
        out = np.empty((n // g, k, 2 * g), dtype=w_gate.dtype)
        for p in range(n // g):
            out[p, :, :g] = w_gate[:, p * g:(p + 1) * g]
            out[p, :, g:] = w_up[:, p * g:(p + 1) * g]
        return out

    # ---- compute (TE) ---------------------------------------------------------------------------
    def compute(self, a, b, n: int, packed: bool, name: str):
        """fp32 (Bt, rows, N) accumulator of A (Ba, M, K) times B: packed panels, or (Bb, K, N) with Bb 1 or Bt.
        With a symbolic M the rows round up to whole 4-row tiles, the extra rows repeating row M-1."""
        a_batch, m, depth = a.shape
        b_batch = b.shape[0]
        out_batch = a_batch if packed or not is_one(a_batch) else b_batch
        rows = m if static_int(m) is not None else (m + PAD_ROWS - 1) // PAD_ROWS * PAD_ROWS
        kk = te.reduce_axis((0, depth), "k")
        w = self.panel

        def lhs(bi, mi):
            row = mi if rows is m else tirx.min(mi, m - 1)
            return lambda ki: _f32(a[0 if is_one(a_batch) else bi, row, ki])

        def rhs(bi, ni):
            if packed:
                return lambda ki: _f32(b[ni // w, ki, ni % w])
            return lambda ki: _f32(b[0 if is_one(b_batch) else bi, ki, ni])

        return te.compute((out_batch, rows, n), lambda bi, mi, ni: te.sum(lhs(bi, mi)(kk) * rhs(bi, ni)(kk), axis=kk),
                          name=name)

    # ---- schedule -------------------------------------------------------------------------------
    def schedule(self, sch: s_tir.Schedule, root: str, acc: str, max_cols: int | None = None,
                 tile: dict | None = None) -> None:
        """Register tile the accumulator under the (Bt, M, N) output block: tile rows/columns divide M/N, the
        accumulator tile lives in registers ("local"), k outermost inside the tile, columns vectorized;
        (batch, column panel, row tile) fused into the parallel loop."""
        inline_producers(sch, root)
        out, accb = sch.get_sblock(root), sch.get_sblock(acc)
        bl, ml, nl = sch.get_loops(out)
        m_len, n_len = static_int(sch.get(ml).extent), static_int(sch.get(nl).extent)
        if n_len is None:
            raise ValueError("mobile-cpu register tiles need a static column count")
        rows = PAD_ROWS if m_len is None else next(r for r in tile_row_choices() if m_len % r == 0)
        limit = max_cols or self.panel
        lanes = fp32_lanes()
        cols = next((c for c in range(limit, 0, -1) if n_len % c == 0 and (c % lanes == 0 or c < lanes)), 1)
        m_out, m_in = sch.split(ml, [None, rows])
        n_out, n_in = sch.split(nl, [None, cols])
        sch.reorder(bl, n_out, m_out, m_in, n_in)
        sch.compute_at(accb, m_out)
        sch.set_scope(accb, 0, "local")
        # under (b, n_out, m_out) the tile keeps a row loop when rows > 1, a column loop when cols > 1, then k
        *tile, k_loop = sch.get_loops(accb)[3:]
        named = dict(zip([kind for kind, size in (("row", rows), ("col", cols)) if size > 1], tile))
        sch.reorder(k_loop, *named.values())      # k outermost: the whole tile accumulates in registers
        if "row" in named:
            sch.unroll(named["row"])              # one FMLA chain per tile row
        if "col" in named:
            for loop in (named["col"], n_in):     # accumulate and store whole NEON vectors
                sch.vectorize(loop)
        sch.parallel(sch.fuse(bl, n_out, m_out))
        sch.decompose_reduction(accb, k_loop)
