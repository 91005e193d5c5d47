"""The cpu target's Capabilities, without importing TVM (the tile pass reads them too)."""
from __future__ import annotations

from functools import lru_cache

from ..base import Capabilities, TileRules
from .target import host_caches, host_dtypes, vector_width_bits

# prefill keys come in 32-key panels (attention/prefill.py PANEL), decode blocks in multiples of 16;
# query rows in multiples of the 8-row register tile; blocks past 256 rows / 1024 keys spill the S tile
# matmuls: 32-column packed weight panels (a panel row = two 64-byte cache lines: 2 zmm / 4 ymm), rows from the
# register file (cost_models/register_tile.py) capped at 8: on this Zen 4 host (1 thread, Linear 336..384 x
# 512..1024 x 512) 4, 8, 12 and 14 rows all ran 106-114 GFLOP/s (within the load noise) and 16 rows spilled (66)
CPU_TILES = TileRules(q_block_multiple=8, kv_block_multiple=32, q_block_max=256, kv_block_max=1024,
                      matmul_cols=32, matmul_rows_max=8)


@lru_cache(maxsize=None)
def cpu_capabilities() -> Capabilities:
    """This machine: SIMD width (so the register count: 32 zmm / 16 ymm) from cpuinfo, L1d/L2 from sysfs, the
    kernels' tile rules."""
    l1, l2 = host_caches()
    width = vector_width_bits()
    return Capabilities(vector_width_bits=width, vector_registers=32 if width >= 512 else 16, on_chip_bytes=l1,
                        second_level_bytes=l2,
                        tensor_cores=False, dtypes=host_dtypes(), runs_here=True, tiles=CPU_TILES,
                        kernel_score_mods=("alibi", "bucketed_bias"))
