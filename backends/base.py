"""The backend protocol: one small plugin per target family.

A backend states its capabilities, lowers an optimized IR graph to an `Executable`
(a callable over numpy arrays) and exports a deployable folder. Only backends
import TVM; the protocol itself is target-neutral so CUDA, mobile and optical
backends plug in without reshaping the core.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ..cost_models.capabilities import Capabilities, TileRules
from ..ir import Graph


@dataclass
class Executable:
    """A lowered graph: `run(list[np.ndarray]) -> list[np.ndarray]`, plus what it was built from."""

    run: Callable[[Sequence[Any]], list[Any]]
    backend: str
    artifacts: dict[str, Any] = field(default_factory=dict)
    # per-node notes from lowering (e.g. "attention site X used the generic fallback because ...")
    notes: list[str] = field(default_factory=list)
    accepts_torch: bool = False

    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.run(inputs)


class Backend(Protocol):
    """Protocol every target implements."""

    name: str
    description: str
    hardware: str            # cost-model catalog key priced for this target
    capabilities: Capabilities

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        """Generate and build code for `graph`."""

    def export(self, executable: Executable, directory: str) -> list[str]:
        """Write deployable artifacts into `directory`; returns the files written."""
