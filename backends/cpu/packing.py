"""Weight packing for the cpu matmuls, numpy only: a cached build binds its weights without importing TVM.

The layout is the one `matmul.matmul_compute` reads (see matmul.py for why panels).
"""
from __future__ import annotations

import numpy as np

from .capabilities import CPU_TILES

PANEL = CPU_TILES.matmul_cols   # columns per packed weight panel (32 = 2 AVX-512 / 4 AVX2 fp32 vectors)


def pack_weight(w: np.ndarray) -> np.ndarray:
    """(K, N) -> (ceil(N/32), K, 32) zero-padded column panels (same dtype)."""
    k, n = w.shape
    npanel = -(-n // PANEL)
    padded = np.zeros((k, npanel * PANEL), dtype=w.dtype)
    padded[:, :n] = w
    return np.ascontiguousarray(padded.reshape(k, npanel, PANEL).transpose(1, 0, 2))


def packed_shape(k: int, n: int) -> tuple[int, int, int]:
    return (-(-n // PANEL), k, PANEL)


GATE_COLS = PANEL // 2   # output columns per gated panel: 16 gate columns + the 16 matching up columns


def pack_gated(w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray:
    """Two (K, N) weights read by the same input -> (N/16, K, 32) panels, each holding 16 gate
    columns then the same 16 up columns, so one register tile computes both halves of
    act(x @ w_gate) * (x @ w_up) for 16 outputs (N must be a multiple of 16)."""
    k, n = w_gate.shape
    if w_up.shape != (k, n) or n % GATE_COLS:
        raise ValueError(f"gated packing needs equal (K, N) weights with N % {GATE_COLS} == 0, "
                         f"got {w_gate.shape} and {w_up.shape}")
    g = w_gate.reshape(k, n // GATE_COLS, GATE_COLS)
    u = w_up.reshape(k, n // GATE_COLS, GATE_COLS)
    return np.ascontiguousarray(np.concatenate([g, u], axis=2).transpose(1, 0, 2))
