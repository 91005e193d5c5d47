"""Tiles of the cuda flash kernels and their resource use, checked against the arch's limits before codegen.

A block holds BQ packed query rows (query positions x heads of one KV group), TPR threads per row; shared
memory holds the Q tile, one K and one V tile, the probabilities P and a reduction scratch, rows padded by
16 bytes (bank-conflict-free column reads). Registers are estimated from the per-thread arrays (accumulator
columns, scores) plus a fixed overhead; the real count comes from ptxas, this estimate only has to reject
tiles that cannot fit.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..arch import CudaArch

ELEM = {"float16": 2, "bfloat16": 2, "float32": 4}
REG_OVERHEAD = 40          # indices, loop counters, softmax state, addresses (estimate)
Q_BLOCKS = (64, 32, 16)    # packed query rows per block, largest first
KV_BLOCKS = (64, 32, 16)


@dataclass(frozen=True)
class FlashTile:
    """One kernel tile: BQ packed query rows, BK keys per step, TPR threads per row."""

    q_block: int
    kv_block: int
    tpr: int

    @property
    def threads(self) -> int:
        return self.q_block * self.tpr


def threads_per_row(v_head_dim: int) -> int:
    """Threads sharing one query row: each keeps v_head_dim / TPR accumulator columns (<= 32 registers)."""
    for tpr in (4, 8, 16, 32):
        if v_head_dim <= 32 * tpr:
            return tpr
    return 32


def pad(dtype: str) -> int:
    """Elements of row padding in shared tiles (16 bytes)."""
    return 16 // ELEM[dtype]


def shared_bytes(tile: FlashTile, head_dim: int, v_head_dim: int, dtype: str, v_from_k: bool = False) -> int:
    """Bytes of shared memory per block; `v_from_k` (absorbed MLA): V is read from the K tile, one padded V row."""
    e, p = ELEM[dtype], pad(dtype)
    v_rows = 1 if v_from_k else tile.kv_block
    return ((tile.q_block + tile.kv_block) * (head_dim + p) * e + v_rows * (v_head_dim + p) * e
            + tile.q_block * (tile.kv_block + 1) * 4 + tile.q_block * tile.tpr * 4)


def registers_per_thread(tile: FlashTile, v_head_dim: int) -> int:
    return -(-v_head_dim // tile.tpr) + tile.kv_block // tile.tpr + REG_OVERHEAD


def violations(tile: FlashTile, head_dim: int, v_head_dim: int, dtype: str, arch: CudaArch,
               v_from_k: bool = False) -> list[str]:
    """The limits `tile` breaks on `arch` (empty when it fits), each naming the limit and its source."""
    out = []
    smem = shared_bytes(tile, head_dim, v_head_dim, dtype, v_from_k)
    if smem > arch.max_shared_per_block:
        out.append(f"shared memory {smem} B per block > {arch.max_shared_per_block} B allowed on {arch.arch} "
                   f"({arch.sources['max_shared_per_block']})")
    if tile.threads > arch.max_threads_per_block:
        out.append(f"{tile.threads} threads per block > {arch.max_threads_per_block} on {arch.arch} "
                   f"({arch.sources['max_threads_per_block']})")
    regs = registers_per_thread(tile, v_head_dim)
    if regs > arch.max_registers_per_thread:
        out.append(f"~{regs} registers per thread > {arch.max_registers_per_thread} on {arch.arch} "
                   f"({arch.sources['max_registers_per_thread']})")
    if regs * tile.threads > arch.registers_per_block:
        out.append(f"~{regs} registers x {tile.threads} threads = {regs * tile.threads} > "
                   f"{arch.registers_per_block} registers per block on {arch.arch} ({arch.sources['registers_per_block']})")
    return out


class TileError(ValueError):
    """No tile of the cuda flash kernel fits the arch's limits (or a forced tile does not)."""


def choose_tile(rows: int, head_dim: int, v_head_dim: int, dtype: str, arch: CudaArch,
                q_block: int | None = None, kv_block: int | None = None, forced: bool = False,
                v_from_k: bool = False) -> FlashTile:
    """The largest tile that fits `arch`: BQ up to the packed rows (a power of two >= 16), BK 64 -> 16.
    `q_block`/`kv_block` (the tile pass's choice) cap the search; with `forced` they are taken as given and
    a tile over a limit raises TileError naming the limit."""
    tpr = threads_per_row(v_head_dim)
    if forced:
        tile = FlashTile(q_block or 64, kv_block or 64, tpr)
        if tile.q_block % 16 or tile.kv_block % 16 or tile.kv_block % tpr:
            raise TileError(f"tile q_block={tile.q_block} kv_block={tile.kv_block}: the cuda flash kernel takes "
                            f"multiples of 16 (kv_block also of {tpr} threads per row)")
        bad = violations(tile, head_dim, v_head_dim, dtype, arch, v_from_k)
        if bad:
            raise TileError(f"tile q_block={tile.q_block} kv_block={tile.kv_block} (head dim {head_dim}/{v_head_dim}, "
                            f"{dtype}) does not fit: " + "; ".join(bad))
        return tile
    want_q = 16
    while want_q < min(rows, 64):
        want_q *= 2
    if q_block:
        want_q = max(16, min(want_q, q_block))
    tried = []
    for bq in (b for b in Q_BLOCKS if b <= want_q):
        for bk in (b for b in KV_BLOCKS if (not kv_block or b <= max(16, kv_block)) and b >= tpr):
            tile = FlashTile(bq, bk, tpr)
            bad = violations(tile, head_dim, v_head_dim, dtype, arch, v_from_k)
            if not bad:
                return tile
            tried.append(bad[0])
    raise TileError(f"no tile of the cuda flash kernel fits head dim {head_dim}/{v_head_dim} ({dtype}) on "
                    f"{arch.arch}; the smallest (16 x 16) breaks: {tried[-1] if tried else 'n/a'}")


def config_tile(cfg, arch: CudaArch, forced: tuple | None = None, v_from_k: bool = False) -> FlashTile:
    """The flash tile for kernel config `cfg`: the tile pass's choice (cfg.q_block / kv_block) capping the search,
    or `forced` = (q_block, kv_block) from the compile options taken as given (over a limit: TileError)."""
    rows = cfg.q_len * cfg.group
    if forced and any(forced):
        return choose_tile(rows, cfg.head_dim, cfg.v_head_dim, cfg.dtype, arch, forced[0], forced[1], forced=True,
                           v_from_k=v_from_k)
    return choose_tile(rows, cfg.head_dim, cfg.v_head_dim, cfg.dtype, arch, cfg.q_block, cfg.kv_block,
                       v_from_k=v_from_k)
