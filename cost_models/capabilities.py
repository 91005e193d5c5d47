"""What a target offers its kernels, the tile pass and the cost report (pure data, no TVM).

Defined here, below the passes and the backends, so the tile pass reads a target's tile rules without
importing a backend; `attncc.backends.base` re-exports both classes.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TileRules:
    """Attention tiles a target's kernels accept: the tile pass proposes only these (so no tile it records
    is rejected at codegen). Sizes in the kernel's own units: query rows of one head, keys."""

    q_block_multiple: int = 1
    kv_block_multiple: int = 1
    q_block_max: int = 1 << 30
    kv_block_max: int = 1 << 30
    # matmul register tile (cost_models/register_tile.py): output columns per tile = the packed weight panel's
    # width, and a cap on its rows; 0 = the target's matmul kernels take no register tile from the tile pass
    matmul_cols: int = 0
    matmul_rows_max: int = 0

    def accepts(self, q_block: int, kv_block: int) -> bool:
        return (q_block % self.q_block_multiple == 0 and kv_block % self.kv_block_multiple == 0
                and q_block <= self.q_block_max and kv_block <= self.kv_block_max)


@dataclass(frozen=True)
class Capabilities:
    """What a target offers codegen and the tiling pass."""

    vector_width_bits: int = 0
    vector_registers: int = 0       # SIMD registers a kernel may keep accumulators in (x86: 32 zmm / 16 ymm)
    on_chip_bytes: int = 0          # L1/shared memory per compute unit
    second_level_bytes: int = 0     # L2 per core / per SM
    tensor_cores: bool = False
    dtypes: tuple[str, ...] = ("float32",)
    runs_here: bool = True          # can execute on this machine (vs generate-only)
    tiles: TileRules = TileRules()
    # score-mod kinds the attention kernel computes itself: decompose-variants keeps them on the op instead of
    # materializing a (1, H, Sq, Skv) bias constant
    kernel_score_mods: tuple[str, ...] = ()
