"""Linear algebra laid out on the 4f correlator: signed operands, matrix products and plane correlations.

Sign encodings (intensity detection reads |E|², so both operands must be non-negative):
  two_pass  a = a⁺ − a⁻: one optical pass per sign, the host subtracts the readouts
  bias      a' = a + c ≥ 0 (c = −min a): one pass; the host removes the offset exactly:
            L(x, w) = L(x + c, w + d) − L(c·1, w + d) − L(x, d·1)   for any bilinear L (matmul, correlation)
With coherent detection the field is read with its sign and signed operands go through in one pass.

Matrix product X (m x k) @ W (k x n) (the cost model's layout, cost_models/optical4f.py): W's (k_t x n_t) tile,
transposed, is the kernel h[a, c] = W[c, a]; each X row is a horizontal strip placed at the bottom row of an
n_t x k_t slot, so the correlation at (slot row i0 − a, slot column 0) is Σ_c X[r, c]·W[c, a] = (XW)[r, a].
floor(A_h/n_t)·floor(A_w/k_t) rows share a frame; k is cut into ceil(k/k_t) chunks summed on the host. The host
scales each X row to full scale first (rows are independent: exact) and the readout back.
Plane correlation: planes (h x w) tile a frame side by side; valid outputs never read a neighbour's pixels.
Planes larger than the aperture are cut into overlapping aperture tiles (overlap-save): a tile of A pixels
yields A − k + 1 valid outputs, the rest of its correlation falls off the camera and is recomputed by the
neighbouring tile.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .physics import Counters, Simulator

Optical = Callable[[list[np.ndarray], np.ndarray], list[np.ndarray]]   # (inputs >= 0, weight >= 0) -> products


def signed_product(sim: Simulator, optical: Optical, exact: Callable[[np.ndarray, np.ndarray], np.ndarray],
                   x: np.ndarray, w: np.ndarray, stats: Counters) -> np.ndarray:
    """The bilinear L(x, w) computed by `optical` on non-negative operands, with the config's sign encodings;
    `exact` evaluates L on the host for the bias corrections (a column/row/box sum, priced as host work)."""
    cfg = sim.cfg
    if cfg.detection == "coherent":
        return optical([x], w)[0]
    xs, c = [(x, 1.0)], 0.0
    if np.min(x) < 0:
        if cfg.signed_inputs == "two_pass":
            xs = [(np.maximum(x, 0), 1.0), (np.maximum(-x, 0), -1.0)]
        else:
            c = -float(np.min(x))
            xs = [(x + c, 1.0)]
    ws, d = [(w, 1.0)], 0.0
    if np.min(w) < 0:
        if cfg.signed_weights == "two_pass":
            ws = [(np.maximum(w, 0), 1.0), (np.maximum(-w, 0), -1.0)]
        else:
            d = -float(np.min(w))
            ws = [(w + d, 1.0)]
    y = None
    for wp, sw in ws:  # weight-stationary: each filter serves every input pass
        for (_, sx), r in zip(xs, optical([a for a, _ in xs], wp)):
            y = sw * sx * r if y is None else y + sw * sx * r
    passes = len(xs) * len(ws)
    stats.host_flops += y.size * (passes - 1)
    if c:
        y = y - exact(np.full_like(x, c), w + d)
        stats.host_flops += y.size
    if d:
        y = y - exact(x, np.full_like(w, d))
        stats.host_flops += y.size
    if len(xs) * len(ws) > 1 or c or d:
        stats.notes.append(f"signed operands: inputs {cfg.signed_inputs if len(xs) > 1 or c else 'unsigned'}, "
                           f"weights {cfg.signed_weights if len(ws) > 1 or d else 'unsigned'}")
    return y


# ---- matrix products ----------------------------------------------------------------------------------------
def _rows_frame(chunk: np.ndarray, n_t: int, k_t: int, per_row: int) -> np.ndarray:
    """Rows of `chunk` (R x kc) at the bottom of n_t x k_t slots, `per_row` slots across."""
    R, kc = chunk.shape
    across = min(per_row, R)
    down = math.ceil(R / across)
    buf = np.zeros((down * across, kc))
    buf[:R] = chunk
    fr = np.zeros((down, n_t, across, k_t))
    fr[:, n_t - 1, :, :kc] = buf.reshape(down, across, kc)
    return fr.reshape(down * n_t, across * k_t)


def _rows_read(y: np.ndarray, R: int, nc: int, n_t: int, k_t: int) -> np.ndarray:
    """(R x nc) products out of a readout laid out by `_rows_frame`."""
    down, across = y.shape[0] // n_t, y.shape[1] // k_t
    Y = y.reshape(down, n_t, across, k_t)[:, ::-1, :, 0]          # [slot row, a, slot col]
    return Y.transpose(0, 2, 1).reshape(down * across, n_t)[:R, :nc]


def matmul(sim: Simulator, x: np.ndarray, w: np.ndarray, tile: tuple[int, int], stats: Counters,
           dynamic: bool = False) -> np.ndarray:
    """x (m x k) @ w (k x n) through the 4f system, tiles (k_t, n_t) of the filter (see the module docstring)."""
    (m, k), n = x.shape, w.shape[1]
    k_t, n_t = tile
    ah, aw = sim.cfg.aperture
    if not (0 < k_t <= aw and 0 < n_t <= ah):
        raise ValueError(f"optical matmul: tile {tile} does not fit the {ah}x{aw} aperture")
    per_row, rows_per_frame = aw // k_t, (ah // n_t) * (aw // k_t)

    def optical(xs: list[np.ndarray], wp: np.ndarray) -> list[np.ndarray]:
        outs = [np.zeros((m, n)) for _ in xs]
        for k0 in range(0, k, k_t):
            kc = min(k_t, k - k0)
            for n0 in range(0, n, n_t):
                nc = min(n_t, n - n0)
                frames, where = [], []
                for i, a in enumerate(xs):
                    for r0 in range(0, m, rows_per_frame):
                        rows = a[r0:r0 + rows_per_frame, k0:k0 + kc]
                        frames.append(_rows_frame(rows, n_t, k_t, per_row))
                        where.append((i, r0, rows.shape[0]))
                reads = sim.correlate(frames, wp[k0:k0 + kc, n0:n0 + nc].T, stats, dynamic)
                for (i, r0, R), y in zip(where, reads):
                    outs[i][r0:r0 + R, n0:n0 + nc] += _rows_read(y, R, nc, n_t, k_t)
        return outs

    # Per-row full scale: output row r depends on input row r alone, so the host scales every row to the SLM's full
    # range and the readout back, exactly. Rows sharing one frame scale lose the small ones to the 8-bit input and
    # the camera's range (attention outputs and softmax rows span 10-100x: o_proj of the example block 0.57 -> 0.07).
    scale = np.max(np.abs(x), axis=1, keepdims=True) if x.size else np.ones((m, 1))
    scale[scale == 0] = 1.0
    y = signed_product(sim, optical, lambda a, b: a @ b, x / scale, w, stats) * scale
    stats.optical_macs += m * k * n
    stats.host_flops += m * n * (math.ceil(k / k_t) - 1) + m * k + m * n   # k-chunk sums; row scale and unscale
    return y


# ---- plane correlations -------------------------------------------------------------------------------------
def _valid_corr(planes: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Host-exact valid cross-correlation of (P, h, w) planes (for the bias corrections)."""
    kh, kw = kernel.shape
    oh, ow = planes.shape[1] - kh + 1, planes.shape[2] - kw + 1
    out = np.zeros((planes.shape[0], oh, ow))
    for a in range(kh):
        for c in range(kw):
            if kernel[a, c]:
                out += kernel[a, c] * planes[:, a:a + oh, c:c + ow]
    return out


def _tiles(planes: np.ndarray, kshape: tuple[int, int], aperture: tuple[int, int]):
    """Overlap-save: (tiles, stitch) for planes larger than the aperture; identity when they fit."""
    P, h, w = planes.shape
    (kh, kw), (ah, aw) = kshape, aperture
    if h <= ah and w <= aw:
        return planes, lambda out: out
    if kh > ah or kw > aw:
        raise ValueError(f"optical correlation: kernel {kshape} exceeds the {ah}x{aw} aperture")
    th, tw = min(h, ah), min(w, aw)
    sh, sw = th - kh + 1, tw - kw + 1                       # valid outputs per tile
    oh, ow = h - kh + 1, w - kw + 1
    nh, nw = math.ceil(oh / sh), math.ceil(ow / sw)
    padded = np.zeros((P, (nh - 1) * sh + th, (nw - 1) * sw + tw))
    padded[:, :h, :w] = planes
    tiles = np.stack([padded[:, i * sh:i * sh + th, j * sw:j * sw + tw] for i in range(nh) for j in range(nw)], 1)

    def stitch(out: np.ndarray) -> np.ndarray:
        out = out.reshape(P, nh, nw, sh, sw).transpose(0, 1, 3, 2, 4).reshape(P, nh * sh, nw * sw)
        return out[:, :oh, :ow]
    return tiles.reshape(P * nh * nw, th, tw), stitch


def correlate_planes(sim: Simulator, planes: np.ndarray, kernel: np.ndarray, stats: Counters,
                     dynamic: bool = False) -> np.ndarray:
    """Valid cross-correlation of every (h x w) plane of `planes` (P, h, w) with one (kh x kw) kernel: planes
    tiled side by side in each frame (overlap-save tiles when a plane is larger than the aperture)."""
    kh, kw = kernel.shape
    ah, aw = sim.cfg.aperture
    tiles, stitch = _tiles(planes, (kh, kw), (ah, aw))
    T, th, tw = tiles.shape
    across = min(aw // tw, T)
    per_frame = (ah // th) * across

    def optical(xs: list[np.ndarray], wp: np.ndarray) -> list[np.ndarray]:
        frames, where = [], []
        for i, a in enumerate(xs):
            for t0 in range(0, T, per_frame):
                group = a[t0:t0 + per_frame]
                down = math.ceil(group.shape[0] / across)
                buf = np.zeros((down * across, th, tw))
                buf[:group.shape[0]] = group
                frames.append(buf.reshape(down, across, th, tw).transpose(0, 2, 1, 3).reshape(down * th, across * tw))
                where.append((i, t0, group.shape[0], down))
        reads = sim.correlate(frames, wp, stats, dynamic)
        outs = [np.zeros((T, th - kh + 1, tw - kw + 1)) for _ in xs]
        for (i, t0, G, down), y in zip(where, reads):
            y = y.reshape(down, th, across, tw).transpose(0, 2, 1, 3).reshape(down * across, th, tw)
            outs[i][t0:t0 + G] = y[:G, :th - kh + 1, :tw - kw + 1]
        return outs

    out = signed_product(sim, optical, _valid_corr, tiles, kernel, stats)
    stats.optical_macs += out.size * kh * kw
    return stitch(out)
