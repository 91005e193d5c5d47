"""Counting a (batched) matrix product C[m, n] = A[m, k] @ B[k, n] with output-stationary tiling.

FLOPs = 2·batch·m·n·k. With output tiles (tm, tn), A is re-read once per column of output
tiles and B once per row of output tiles: batch·(m·k·⌈n/tn⌉ + k·n·⌈m/tm⌉ + m·n)·bytes.
Those re-reads come from main memory only when the reused data does not stay on chip: B's
k x tn panel is reused by every row tile (it stays when it fits the tiled level), A is reused by
every column of tiles (it stays when it fits the largest on-chip level, e.g. the CPU's L3);
re-reads that stay on chip are priced at that level. So a large-m product is compute-bound
and a small-m one (decode's Linear) streams its weight once: memory-bound.
(a Linear flattens its leading dims into m, batch 1). Without a tiling the
largest square tiles whose A, B panels and C tile fit the tiled level are assumed, cut to m rows / n columns.
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


# rows up to which a product is the decode regime ("matmul.gemv": a Linear of 1-16 tokens streams its weight and
# pads its rows to a register tile; the cpu backend's decode GEMV, issue 27 item 1), fitted as its own kernel class
GEMV_MAX_ROWS = 16


def matmul_class(m: int | None) -> str:
    """The kernel class a product of `m` rows is priced as: "matmul.gemv" (m <= GEMV_MAX_ROWS) or "matmul"."""
    return "matmul.gemv" if isinstance(m, int) and 0 < m <= GEMV_MAX_ROWS else "matmul"


def count_matmul(m: int, n: int, k: int, batch: int, dtype: str, hw: HardwareSpec, tiling: Tiling | None = None) -> OpCost:
    """FLOPs and bytes (no pricing) of batch independent (m×k)@(k×n) products."""
    for name, v in (("m", m), ("n", n), ("k", k), ("batch", batch)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"matmul {name} must be a positive int, got {v!r}")
    elem = DTYPE_BYTES[dtype]
    if tiling is not None and tiling.q_block and tiling.kv_block:
        tm, tn = tiling.q_block, tiling.kv_block
    else:  # never taller/wider than the product itself (a decode Linear's single row is not padded to a tile)
        t = _square_tile(m, n, k, elem, hw.on_chip_bytes)
        tm, tn = min(t, m), min(t, n)
    a_once, b_once, c = batch * m * k, batch * k * n, batch * m * n
    a = a_once * math.ceil(n / tn)
    bb = b_once * math.ceil(m / tm)
    reuse = max(hw.on_chip_levels, key=lambda lv: lv.capacity_bytes * (lv.units if lv.per_unit else 1))
    a_stays = m * k * elem <= reuse.capacity_bytes
    b_stays = k * tn * elem <= hw.on_chip_bytes
    main = (a_once if a_stays else a) + (b_once if b_stays else bb) + c
    # A's re-reads come from the reuse level (L3); B's panel re-reads stay in the tiled level (L2), which
    # bytes[tile_level] below already counts
    on_chip_rereads = (a - a_once) if a_stays else 0
    cost = OpCost(flops=2.0 * batch * m * n * k, main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = float(main * elem)
    cost.bytes[hw.tile_level] = float((a + bb + c) * elem)  # every operand panel read passes the tiled level
    if on_chip_rereads and reuse.name != hw.tile_level:
        cost.bytes[reuse.name] = cost.bytes.get(reuse.name, 0.0) + on_chip_rereads * elem
    cost.parallel_tasks = batch * math.ceil(m / tm) * math.ceil(n / tn)
    # whole output tiles are computed: a tile that does not divide m or n pads its last row/column
    cost.executed_flops = 2.0 * batch * math.ceil(m / tm) * tm * math.ceil(n / tn) * tn * k
    cost.details.update(m=m, n=n, k=k, batch=batch, tile=(tm, tn), a_stays_on_chip=a_stays, b_panel_stays_on_chip=b_stays)
    return cost


def matmul_cost(m: int, n: int, k: int, batch: int, dtype: str, hardware: HardwareSpec | str,
                tiling: Tiling | None = None) -> OpCost:
    """Counted and priced cost of batch (m×k)@(k×n) products on `hardware`."""
    hw = get_hardware(hardware)
    return price(count_matmul(m, n, k, batch, dtype, hw, tiling), hw, dtype, "matmul")
