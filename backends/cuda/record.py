"""The `cuda` target, all of it: options (arch, forced tile), TVM target, capabilities, priced device,
parallel units (SMs, from the device spec), pipeline.

Per-arch limits: arch.py; kernels: plugin.py (schedules.py, matmul.py, tensor_core/, attention/); nvcc AOT
builds: nvcc.py, program.py; backend: backend.py. TVM-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...cost_models.hardware import get_hardware
from ...cost_models.target import Options, Target
from ...ir.passes.pipelines import target_pipeline
from .arch import ARCHES, DEFAULT_ARCH, cuda_arch
from .capabilities import cuda_capabilities
from .target import cuda_target

NAME = "cuda"
DESCRIPTION = "NVIDIA GPU sm_80/sm_90a through TVM CUDA codegen, kernels AOT-compiled by nvcc"


@dataclass(frozen=True)
class CudaOptions(Options):
    arch: str = DEFAULT_ARCH        # sm_80 | sm_90a, or an alias (a100, h100, h200); stored as the nvcc name
    q_block: int | None = None      # force the attention tile (taken as given, checked against the arch)
    kv_block: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "arch", cuda_arch(self.arch).arch)   # CudaArchError names the supported ones


def cuda_record(options: Mapping[str, Any] | None = None) -> Target:
    """The `cuda` Target for these compile options: priced as the arch's device (sm_80: a100-80gb, sm_90a:
    h100-sxm), its SM count read from that device's spec (the units of its shared-memory level)."""
    opts = CudaOptions.parse(NAME, options)
    arch = cuda_arch(opts.arch)
    hw = get_hardware(arch.hardware)
    units = hw.parallel_units or hw.level(hw.tile_level).units
    items = [f"arch={opts.arch}"] if opts.arch != DEFAULT_ARCH else []
    forced = ",".join(f"{k}={getattr(opts, k)}" for k in ("q_block", "kv_block") if getattr(opts, k))
    return Target(name=NAME, description=DESCRIPTION, backend="attncc.backends.cuda.backend:CudaBackend",
                  options=opts, tvm_target=cuda_target({"arch": opts.arch}), capabilities=cuda_capabilities(opts.arch),
                  device=hw.name, parallel_units=units,
                  pipeline=target_pipeline(NAME + (":" + ";".join(items) if items else ""), units, forced),
                  devices=tuple(d for a in ARCHES.values() for d in a.devices))
