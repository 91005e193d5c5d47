"""Counting a (batched) matrix product C[m, n] = A[m, k] @ B[k, n] with output-stationary tiling.

FLOPs = 2·batch·m·n·k. Main-memory bytes with tiles (tm, tn) resident on chip: A is re-read
once per column of output tiles and B once per row of output tiles:
    batch·(m·k·⌈n/tn⌉ + k·n·⌈m/tm⌉ + m·n)·bytes
(a Linear flattens its leading dims into m, batch 1). Without a tiling the
largest square tiles whose A, B panels and C tile fit the tiled level are assumed.
"""
from __future__ import annotations

import math

from attncc.ir.ops.attention import Tiling
from attncc.ir.types import DTYPE_BYTES

from .hardware import HardwareSpec, get_hardware
from .pricing import OpCost, price


def _square_tile(m: int, n: int, k: int, elem: int, cap: int) -> int:
    """Largest power-of-two t with (t·k_panel + k_panel·t + t·t)·bytes <= cap, k_panel = min(k, 256)."""
    kp = min(k, 256)
    t = 1
    while (2 * t * 2 * kp + (2 * t) ** 2) * elem <= cap and 2 * t <= max(m, n):
        t *= 2
    return t


def count_matmul(m: int, n: int, k: int, batch: int, dtype: str, hw: HardwareSpec, tiling: Tiling | None = None) -> OpCost:
    """FLOPs and bytes (no pricing) of batch independent (m×k)@(k×n) products."""
    for name, v in (("m", m), ("n", n), ("k", k), ("batch", batch)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"matmul {name} must be a positive int, got {v!r}")
    elem = DTYPE_BYTES[dtype]
    if tiling is not None and tiling.q_block and tiling.kv_block:
        tm, tn = tiling.q_block, tiling.kv_block
    else:
        tm = tn = _square_tile(m, n, k, elem, hw.on_chip_bytes)
    a = batch * m * k * math.ceil(n / tn)
    bb = batch * k * n * math.ceil(m / tm)
    c = batch * m * n
    # never below compulsory traffic (each operand once)
    main = max(a + bb + c, batch * (m * k + k * n) + c) * elem
    cost = OpCost(flops=2.0 * batch * m * n * k, main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = float(main)
    cost.bytes[hw.tile_level] = 2.0 * batch * m * n * k * elem / max(1, min(tm, tn))  # operand panel reads on chip
    cost.details.update(m=m, n=n, k=k, batch=batch, tile=(tm, tn))
    return cost


def matmul_cost(m: int, n: int, k: int, batch: int, dtype: str, hardware: HardwareSpec | str,
                tiling: Tiling | None = None) -> OpCost:
    """Counted and priced cost of batch (m×k)@(k×n) products on `hardware`."""
    hw = get_hardware(hardware)
    return price(count_matmul(m, n, k, batch, dtype, hw, tiling), hw, dtype, "matmul")
