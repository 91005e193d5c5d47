"""The cpu target's Capabilities, without importing TVM (the tile pass reads them too)."""
from __future__ import annotations

from functools import lru_cache

from ..base import Capabilities, TileRules
from .target import host_caches, host_dtypes, vector_width_bits

# prefill keys come in 32-key panels (attention/prefill.py PANEL), decode blocks in multiples of 16;
# query rows in multiples of the 8-row register tile; blocks past 256 rows / 1024 keys spill the S tile
CPU_TILES = TileRules(q_block_multiple=8, kv_block_multiple=32, q_block_max=256, kv_block_max=1024)


@lru_cache(maxsize=None)
def cpu_capabilities() -> Capabilities:
    """This machine: SIMD width from cpuinfo, L1d/L2 from sysfs, the kernels' tile rules."""
    l1, l2 = host_caches()
    return Capabilities(vector_width_bits=vector_width_bits(), on_chip_bytes=l1, second_level_bytes=l2,
                        tensor_cores=False, dtypes=host_dtypes(), runs_here=True, tiles=CPU_TILES,
                        kernel_score_mods=("alibi", "bucketed_bias"))
