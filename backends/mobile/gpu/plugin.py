"""The `mobile-gpu` target plugin: OpenCL kernels for Adreno/Mali-class GPUs, sized from the device spec."""
from __future__ import annotations

from typing import Any

from . import schedules
from .matmul import GpuMatmul
from .spec import mobile_gpu_capabilities, opencl_limits


class MobileGpuPlugin:
    """OpenCL (buffers) with an LLVM host; kernels sized by `opencl_limits()` (cost_models/specs/mobile-gpu.json)."""

    name = "mobile-gpu"
    description = "OpenCL GPU (Adreno/Mali class), run here through pyopencl"
    hardware = "mobile-gpu"
    attention_mask_full = True   # the flash kernel reads the mask at (b, h): the core expands broadcast masks

    def __init__(self):
        self.capabilities = mobile_gpu_capabilities()
        self.limits = opencl_limits()
        self.matmul = GpuMatmul()

    def tvm_target(self, options: dict[str, Any]) -> dict:
        """OpenCL with the spec's work-group and local-memory limits (TVM checks its own schedules against
        them); the host side is plain LLVM (only its lowered IR is read: launches are replayed by pyopencl)."""
        return {"kind": "opencl", "max_num_threads": self.limits.max_work_group_size,
                "max_threads_per_block": self.limits.max_work_group_size,
                "max_shared_memory_per_block": self.limits.local_mem_bytes,
                "thread_warp_size": 1, "host": {"kind": "llvm"}}

    def schedule(self, kind: str):
        return schedules.SCHEDULES[kind]

    def attention_primfunc(self, cfg, target: dict):
        """(PrimFunc, metadata) of the OpenCL flash-attention kernel for `cfg` (gpu/attention.py). Shapes it
        does not take (dynamic dims, bf16) raise ValueError: the core then uses its generic TE attention and
        says so in the plan notes; a tile over the device limits raises TileDoesNotFit (a compile error)."""
        from .attention import attention_primfunc

        return attention_primfunc(cfg, self.limits)

    def prepare_runtime(self, target: dict) -> list[str]:
        from .spec import opencl_problem

        problem = opencl_problem()
        if problem is not None:
            return [f"mobile-gpu: no working OpenCL device in this process ({problem}): the OpenCL sources compile "
                    "and export, but running them here raises (pip install pyopencl pocl-binary-distribution gives "
                    "a CPU device)"]
        return []
