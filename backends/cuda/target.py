"""The TVM target dict for a cuda arch, with the per-block limits TVM's passes and dlight read."""
from __future__ import annotations

from typing import Any

from .arch import cuda_arch


def cuda_target(options: dict[str, Any] | None = None) -> dict:
    """{"kind": "cuda", "arch": ...} for options["arch"] (sm_80 | sm_90a, default sm_90a), with the limits
    of backends/cuda/arch.py (TVM's verifier checks generated kernels against them)."""
    a = cuda_arch((options or {}).get("arch"))
    return {"kind": "cuda", "arch": a.arch, "max_num_threads": a.max_threads_per_block,
            "thread_warp_size": a.warp_size, "max_shared_memory_per_block": a.max_shared_per_block,
            "registers_per_block": a.registers_per_block}
