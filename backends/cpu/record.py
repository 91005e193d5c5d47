"""The `cpu` target, all of it: options, TVM target, capabilities, priced device, parallel units, pipeline.

Kernels: plugin.py (schedules.py, matmul.py, conv.py, attention/); host facts: target.py; backend: backend.py.
TVM-free (the passes and the report read this record without loading the compiler).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...cost_models.target import Options, Target
from ...ir.passes.pipelines import target_pipeline
from .capabilities import cpu_capabilities
from .target import host_cores, host_target

NAME = "cpu"
DESCRIPTION = "host CPU through TVM/LLVM (x86-64 AVX2/AVX-512)"
DEVICE = "host-cpu"   # cost_models/specs/host-cpu.json (calibrated on this machine by `attncc calibrate`)


@dataclass(frozen=True)
class CpuOptions(Options):
    mcpu: str | None = None        # an LLVM -mcpu (default: named from /proc/cpuinfo, or $ATTNCC_CPU_MCPU)
    num_cores: int | None = None   # threads the kernels are split for (default: the cores this process may use)


def cpu_record(options: Mapping[str, Any] | None = None) -> Target:
    """The `cpu` Target for these compile options. Parallel units: this machine's cores (the device is this
    host; its spec's `parallel_units` is the same nproc figure)."""
    opts = CpuOptions.parse(NAME, options)
    units = opts.num_cores or host_cores()
    spec = NAME + (":" + ";".join(opts.spec_items()) if opts.spec_items() else "")
    return Target(name=NAME, description=DESCRIPTION, backend="attncc.backends.cpu.backend:CpuBackend",
                  options=opts, tvm_target=host_target(opts.mcpu, opts.num_cores), capabilities=cpu_capabilities(),
                  device=DEVICE, parallel_units=units, pipeline=target_pipeline(spec, units),
                  devices=(DEVICE,))
