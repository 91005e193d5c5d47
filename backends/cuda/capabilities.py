"""The cuda target's Capabilities, without importing TVM (the tile pass and the cost report read them)."""
from __future__ import annotations

import glob
from functools import lru_cache

from ...cost_models.hardware import get_hardware
from ..base import Capabilities, TileRules
from .arch import cuda_arch

# what the flash kernels (attention/flash.py) accept: packed query rows and keys in multiples of 16 (one
# thread row group per query row, 16-key steps), at most 64 x 64 (the S tile lives in shared memory)
CUDA_TILES = TileRules(q_block_multiple=16, kv_block_multiple=16, q_block_max=64, kv_block_max=64)


def cuda_device_present() -> bool:
    """True when this machine exposes an NVIDIA device node (the driver is loaded); no CUDA call is made."""
    return bool(glob.glob("/dev/nvidia[0-9]*"))


@lru_cache(maxsize=None)
def cuda_capabilities(arch: str | None = None) -> Capabilities:
    """Capabilities for `arch` (default sm_90a): shared memory per SM and L2 from the device spec
    (cost_models/specs), warp width, tensor cores, fp16/bf16, the kernels' tile rules."""
    a = cuda_arch(arch)
    spec = get_hardware(a.hardware)
    return Capabilities(vector_width_bits=a.warp_size * 32, on_chip_bytes=spec.level("smem").capacity_bytes,
                        second_level_bytes=spec.level("l2").capacity_bytes, tensor_cores=True,
                        dtypes=("float32", "float16", "bfloat16"), runs_here=cuda_device_present(), tiles=CUDA_TILES)
