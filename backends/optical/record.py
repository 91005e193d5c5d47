"""The `optical` target, all of it: a simulated 4f system (no TVM code), priced as optical-4f, one parallel
unit (one correlator: splitting KV buys nothing), its pipeline. Simulator options: config.py (docs/optical.md)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ...cost_models.capabilities import Capabilities
from ...cost_models.target import Options, Target
from ...ir.passes.pipelines import target_pipeline

NAME = "optical"
DESCRIPTION = "simulated free-space 4f optical accelerator (DMD/SLM input, Fourier filter, camera; numpy host)"
DEVICE = "optical-4f"
CAPABILITIES = Capabilities(dtypes=("float32", "float64"))


@dataclass(frozen=True)
class OpticalOptions(Options):
    hardware: str = DEVICE      # another optical catalog entry (the simulator's other options: config.py)


def optical_record(options: Mapping[str, Any] | None = None) -> Target:
    """The `optical` Target (the simulator's own options are checked by config.py at lowering)."""
    opts = OpticalOptions.parse(NAME, options)
    return Target(name=NAME, description=DESCRIPTION, backend="attncc.backends.optical.backend:OpticalBackend",
                  options=opts, tvm_target={}, capabilities=CAPABILITIES,
                  device=opts.hardware, parallel_units=1, pipeline=target_pipeline(NAME, 1),
                  devices=tuple(dict.fromkeys((DEVICE, opts.hardware))))
