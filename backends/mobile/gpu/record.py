"""The `mobile-gpu` target, all of it: TVM target (OpenCL + LLVM host, sized by the spec's limits),
capabilities, priced device, parallel units (the spec's compute units), pipeline.

Kernels: plugin.py (schedules.py, matmul.py, attention.py); OpenCL library: compile.py; pyopencl runner:
executor.py; backend: backend.py. TVM-free: everything is read from cost_models/specs/mobile-gpu.json.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ....cost_models.hardware import get_hardware
from ....cost_models.target import Options, Target
from ....ir.passes.pipelines import target_pipeline
from .spec import mobile_gpu_capabilities, opencl_limits

NAME = "mobile-gpu"
DESCRIPTION = "OpenCL GPU (Adreno 640 / Mali-G76 class limits), run here through pyopencl"
DEVICE = "mobile-gpu"


@dataclass(frozen=True)
class MobileGpuOptions(Options):
    """No target options (the device limits come from the spec)."""


def opencl_target() -> dict:
    """OpenCL with the spec's work-group and local-memory limits (TVM checks its own schedules against them);
    the host side is plain LLVM (only its lowered IR is read: launches are replayed by pyopencl)."""
    lim = opencl_limits()
    return {"kind": "opencl", "max_num_threads": lim.max_work_group_size,
            "max_threads_per_block": lim.max_work_group_size, "max_shared_memory_per_block": lim.local_mem_bytes,
            "thread_warp_size": 1, "host": {"kind": "llvm"}}


def mobile_gpu_record(options: Mapping[str, Any] | None = None) -> Target:
    """The `mobile-gpu` Target."""
    hw = get_hardware(DEVICE)
    units = hw.parallel_units or hw.level(hw.tile_level).units
    return Target(name=NAME, description=DESCRIPTION, backend="attncc.backends.mobile.gpu.backend:MobileGpuBackend",
                  options=MobileGpuOptions.parse(NAME, options), tvm_target=opencl_target(),
                  capabilities=mobile_gpu_capabilities(), device=hw.name, parallel_units=units,
                  pipeline=target_pipeline(NAME, units), devices=(DEVICE,))
