"""The `mobile-cpu` target, all of it: options, TVM target (aarch64 LLVM), capabilities, priced device,
parallel units (the spec's big cores), pipeline.

Kernels: plugin.py (schedules.py, matmul.py, attention.py); cross-linking: cross.py; emulation: emulate.py,
rpc.py; backend: backend.py. TVM-free: everything is read from cost_models/specs/mobile-cpu.json.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ....cost_models.target import Options, Target
from ....ir.passes.pipelines import target_pipeline
from .capabilities import SPEC, device_spec, mobile_cpu_capabilities
from .target import mobile_target

NAME = "mobile-cpu"
DESCRIPTION = "aarch64 NEON (Cortex-A76 baseline, fp16, dotprod), cross-compiled"


@dataclass(frozen=True)
class MobileCpuOptions(Options):
    mcpu: str | None = None            # another aarch64 CPU LLVM knows (e.g. cortex-x1); default: the spec's
    mattr: tuple[str, ...] = ()        # LLVM attributes (default: the spec's)
    num_cores: int | None = None       # threads the kernels are split for (default: the spec's big cores)


def mobile_cpu_record(options: Mapping[str, Any] | None = None) -> Target:
    """The `mobile-cpu` Target for these compile options."""
    opts = MobileCpuOptions.parse(NAME, options)
    hw = device_spec()
    tvm_target = mobile_target({"mcpu": opts.mcpu, "mattr": list(opts.mattr), "num_cores": opts.num_cores})
    units = opts.num_cores or hw.parallel_units
    return Target(name=NAME, description=DESCRIPTION, backend="attncc.backends.mobile.cpu:MobileCpuBackend",
                  options=opts, tvm_target=tvm_target, capabilities=mobile_cpu_capabilities(), device=SPEC,
                  parallel_units=units, pipeline=target_pipeline(NAME, units), devices=(SPEC,))
