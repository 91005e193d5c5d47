"""HBM traffic of standard vs FlashAttention training (forward + backward), per Dao et al. 2022.

Element counts per (batch, head) from the paper's algorithms, N = sequence, d = head dim:
  standard (Alg. 0 forward, Alg. 3 backward): forward 4N² + 4Nd, backward 7N² + 8Nd, plus
      2N² per elementwise pass over the score matrix in each direction (masking, dropout).
  FlashAttention (Alg. 2 forward, Alg. 4 backward; K/V blocks in the outer loop, T_c = ⌈N/B_c⌉):
      forward 2Nd + T_c·(3Nd + 4N)  (K, V once; Q, O, ℓ, m read and O, ℓ, m written per outer step)
      backward 4Nd + T_c·(5Nd + 2N) (K, V, dK, dV once; Q, O, dO, dQ, ℓ, m read, dQ written per step)
Block sizes follow the paper: B_c = ⌈M / 4d⌉, B_r = min(B_c, d) for M on-chip elements.
"""
from __future__ import annotations

import math

from attncc.ir.types import DTYPE_BYTES

from .hardware import HardwareSpec, get_hardware


def flash_block_sizes(on_chip_bytes: int, head_dim: int, dtype: str) -> tuple[int, int]:
    """(B_r, B_c) of FlashAttention for an on-chip memory of `on_chip_bytes`."""
    m = on_chip_bytes // DTYPE_BYTES[dtype]
    bc = math.ceil(m / (4 * head_dim))
    return min(bc, head_dim), bc


def standard_attention_hbm_bytes(batch: int, heads: int, seq: int, head_dim: int, dtype: str,
                                 score_passes: int = 0, backward: bool = True) -> float:
    """HBM bytes of unfused attention; `score_passes` elementwise N×N passes (mask, dropout) per direction."""
    n, d = seq, head_dim
    elems = 4 * n * n + 4 * n * d + 2 * score_passes * n * n
    if backward:
        elems += 7 * n * n + 8 * n * d + 2 * score_passes * n * n
    return float(batch * heads * elems * DTYPE_BYTES[dtype])


def flash_attention_hbm_bytes(batch: int, heads: int, seq: int, head_dim: int, dtype: str,
                              hardware: HardwareSpec | str, backward: bool = True) -> float:
    """HBM bytes of FlashAttention with the paper's block sizes for `hardware`'s on-chip memory."""
    hw = get_hardware(hardware)
    n, d = seq, head_dim
    _, bc = flash_block_sizes(hw.on_chip_bytes, d, dtype)
    tc = math.ceil(n / bc)
    elems = 2 * n * d + tc * (3 * n * d + 4 * n)
    if backward:
        elems += 4 * n * d + tc * (5 * n * d + 2 * n)
    return float(batch * heads * elems * DTYPE_BYTES[dtype])
