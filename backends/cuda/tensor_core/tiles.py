"""Block/warp tiles of the tensor-core GEMM (tensor_core/schedule.py) and their cost in shared memory, threads and
registers, checked against the arch's limits (arch.py, every limit sourced there). No TVM import.

Shared memory per block = stages x (block_m x (block_k + 8) + block_k x (block_n + 8)) operand elements
(+8: the row padding the schedule adds against bank conflicts) + block_m x block_n fp32 for the epilogue tile.
Registers per thread are estimated from the fragments a lane holds (PTX ISA, mma.m16n8k16 fragments: a 16x16
fp32 accumulator is 8 registers per lane, a 16x16 b16 operand 4): accumulators + one k-step of A and B
fragments + a fixed 40 for addresses, loop counters and the copy's vector registers. An estimate, checked once:
for the 128x128x32 tile (4 warps of 64x64) it gives 200; `nvcc -arch=sm_90a -Xptxas -v` on the generated kernel
reported 166 registers (168 for sm_80) with cp.async copies, 182 with synchronous ones, no spills (CUDA 13.0,
2026-12-02), so the estimate errs on the safe side there.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..arch import CudaArch

OVERHEAD_REGISTERS = 40   # estimate (see module docstring; ptxas: 166-182 used where 200 is estimated)
ELEM_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}   # float32: only the CPU check of the loop nest


class TcTileError(ValueError):
    """A tensor-core tile exceeds a limit of the arch; the message names the tile and the limit."""


@dataclass(frozen=True)
class TcTile:
    """A block tile of block_m x block_n outputs split over warps_m x warps_n warps, k steps of block_k."""

    block_m: int
    block_n: int
    block_k: int
    warps_m: int
    warps_n: int
    stages: int = 2

    @property
    def warp_m(self) -> int:
        return self.block_m // self.warps_m

    @property
    def warp_n(self) -> int:
        return self.block_n // self.warps_n

    @property
    def warps(self) -> int:
        return self.warps_m * self.warps_n

    def __str__(self) -> str:
        return (f"{self.block_m}x{self.block_n}x{self.block_k} ({self.warps_m}x{self.warps_n} warps, "
                f"{self.stages} stages)")


def shared_bytes(t: TcTile, dtype: str) -> int:
    """Dynamic shared memory of one block: padded operand stages + the fp32 epilogue tile."""
    operands = t.stages * (t.block_m * (t.block_k + 8) + t.block_k * (t.block_n + 8)) * ELEM_BYTES[dtype]
    return operands + t.block_m * t.block_n * 4


def registers_per_thread(t: TcTile) -> int:
    """Estimated 32-bit registers per lane: accumulators + A/B fragments of one 16-wide k step + overhead."""
    acc = (t.warp_m // 16) * (t.warp_n // 16) * 8
    frags = (t.warp_m // 16) * 4 + (t.warp_n // 16) * 4
    return acc + frags + OVERHEAD_REGISTERS


def violations(t: TcTile, dtype: str, arch: CudaArch) -> list[str]:
    """Every limit of `arch` the tile breaks (empty when it fits), and shape rules the schedule needs."""
    out = []
    if t.warp_m % 16 or t.warp_n % 16 or t.block_k % 16 or t.block_m % t.warps_m or t.block_n % t.warps_n:
        out.append("warp tiles and block_k must be multiples of 16 (the mma/ldmatrix fragment)")
    threads = t.warps * arch.warp_size
    if threads > arch.max_threads_per_block:
        out.append(f"{threads} threads per block > {arch.max_threads_per_block} on {arch.arch}")
    for rows, cols, what in ((t.block_m, t.block_k, "A"), (t.block_k, t.block_n, "B")):
        if (rows * cols) % (threads * 8):
            out.append(f"the {what} tile {rows}x{cols} is not a whole number of 8-element loads per thread "
                       f"({threads} threads)")
    if (t.block_m * t.block_n) % (threads * 4):
        out.append(f"the output tile is not a whole number of 4-element stores per thread ({threads} threads)")
    smem = shared_bytes(t, dtype)
    if smem > arch.max_shared_per_block:
        out.append(f"shared memory {smem} B per block > {arch.max_shared_per_block} B allowed on {arch.arch}")
    regs = registers_per_thread(t)
    if regs > arch.max_registers_per_thread:
        out.append(f"~{regs} registers per thread > {arch.max_registers_per_thread} on {arch.arch}")
    if regs * threads > arch.registers_per_block:
        out.append(f"~{regs * threads} registers per block > {arch.registers_per_block} on {arch.arch}")
    return out


def check_tile(t: TcTile, dtype: str, arch: CudaArch) -> None:
    """Raise TcTileError naming the tile and each limit it breaks."""
    bad = violations(t, dtype, arch)
    if bad:
        raise TcTileError(f"tensor-core tile {t}: " + "; ".join(bad))


# largest first: a bigger block tile reuses each shared-memory byte across more mma (128x128: 4 warps of 64x64)
CANDIDATES = (
    TcTile(128, 128, 32, 2, 2), TcTile(128, 64, 32, 2, 2), TcTile(64, 128, 32, 2, 2),
    TcTile(64, 64, 32, 2, 2), TcTile(64, 32, 32, 2, 1), TcTile(32, 64, 32, 1, 2), TcTile(32, 32, 32, 1, 1),
    TcTile(32, 32, 16, 1, 1), TcTile(16, 16, 16, 1, 1),
)


def tile_reason(m, n, k, dtype: str) -> str | None:
    """Why (m, n, k, dtype) gets no tensor-core tile at all, or None when some tile may fit."""
    if dtype not in ("float16", "bfloat16"):
        return f"operands are {dtype}; tensor-core schedules take float16/bfloat16 (fp32 accumulation)"
    if not all(isinstance(d, int) for d in (m, n, k)):
        return f"shape M={m} N={n} K={k} is symbolic; tensor-core tiles need static extents"
    for d, name in ((m, "M"), (n, "N"), (k, "K")):
        if d % 16:
            return f"{name}={d} is not a multiple of 16 (the mma.sync m16n8k16 fragment)"
    return None


def choose_tile(m: int, n: int, k: int, dtype: str, arch: CudaArch, forced: TcTile | None = None) -> TcTile:
    """The largest candidate tile that divides (m, n, k) and fits `arch`; a forced tile is checked, not changed.
    Raises TcTileError when nothing fits (callers fall back to another schedule)."""
    if forced is not None:
        check_tile(forced, dtype, arch)
        if m % forced.block_m or n % forced.block_n or k % forced.block_k:
            raise TcTileError(f"tensor-core tile {forced} does not divide M={m} N={n} K={k}")
        return forced
    for t in CANDIDATES:
        if m % t.block_m or n % t.block_n or k % t.block_k:
            continue
        if not violations(t, dtype, arch):
            return t
    raise TcTileError(f"no tensor-core tile divides M={m} N={n} K={k} within {arch.arch}'s limits")
