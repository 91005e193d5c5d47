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

from ..ir import Graph


@dataclass(frozen=True)
class TileRules:
    """Attention tiles a target's kernels accept: the tile pass proposes only these (so no tile it records
    is rejected at codegen). Sizes in the kernel's own units: query rows of one head, keys."""

    q_block_multiple: int = 1
    kv_block_multiple: int = 1
    q_block_max: int = 1 << 30
    kv_block_max: int = 1 << 30

    def accepts(self, q_block: int, kv_block: int) -> bool:
        return (q_block % self.q_block_multiple == 0 and kv_block % self.kv_block_multiple == 0
                and q_block <= self.q_block_max and kv_block <= self.kv_block_max)


@dataclass(frozen=True)
class Capabilities:
    """What a target offers codegen and the tiling pass."""

    vector_width_bits: int = 0
    on_chip_bytes: int = 0          # L1/shared memory per compute unit
    second_level_bytes: int = 0     # L2 per core / per SM
    tensor_cores: bool = False
    dtypes: tuple[str, ...] = ("float32",)
    runs_here: bool = True          # can execute on this machine (vs generate-only)
    tiles: TileRules = TileRules()


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
