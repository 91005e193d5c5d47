"""What a target plugin gives the shared lowering core.

The core (fusion, TE op definitions, plan, builder, runner, cache, export) is target-neutral;
a plugin supplies only what differs between targets:
- its TVM target and `Capabilities` (the one source the tiling pass, kernels and report read);
- a schedule per kernel class ("injective", "rows", "generic") applied to a TE-made PrimFunc;
- a matmul strategy (weight packing layout, the TE compute over it, its schedule);
- its attention kernels (a PrimFunc per `AttentionKernelConfig`, compiled into the plan's one library);
- what to do before its code runs here (e.g. size the CPU thread pool).
See docs/adding-a-target.md.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import numpy as np

from ..base import Capabilities
from .attention_config import AttentionKernelConfig

Schedule = Callable[[Any, str], None]   # fn(tvm.s_tir.Schedule, root block name)


class MatmulStrategy(Protocol):
    """How a target computes Linear/MatMul groups.

    Constant weights are repacked once at load (`pack_weight`, `pack_gated`) into `packed_shape`;
    `compute` defines the fp32 accumulator over (B, M, K) x packed-or-plain B; `schedule` tiles it.
    """

    gate_cols: int            # output columns per gated panel (0: the target has no gated matmul)
    panel: int                # columns per packed weight panel

    def packed_shape(self, k: int, n: int) -> tuple[int, ...]: ...

    def pack_weight(self, w: np.ndarray) -> np.ndarray: ...

    def pack_gated(self, w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray: ...

    def compute(self, a, b, n: int, packed: bool, name: str): ...

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None) -> None: ...


class TargetPlugin(Protocol):
    """One target family. The core calls nothing else target-specific."""

    name: str
    description: str
    hardware: str                     # cost-model catalog key priced for this target
    capabilities: Capabilities
    matmul: MatmulStrategy

    def tvm_target(self, options: dict[str, Any]) -> dict:
        """The TVM target dict for these compile options."""

    def schedule(self, kind: str) -> Schedule:
        """The schedule for a kernel class: "injective", "rows" or "generic"."""

    def attention_primfunc(self, cfg: AttentionKernelConfig, target: dict):
        """(PrimFunc over (q, k, v[, mask], out), metadata) of the attention kernel for `cfg`, built into
        the plan's one library by the core."""

    def prepare_runtime(self, target: dict) -> list[str]:
        """Make this process ready to run the target's code; returns notes for the user."""

    # Optional, for targets whose code cannot run in this process (cross-compiled, emulated):
    #   write_library(lib, path): write a built library (default: lib.export_library(path), the host's cc)
    #   read_library(path): what a runner gets for a library file (default: tvm.runtime.load_module(path))
    #   runner_class: the PlanRunner-like class binding (plan, lib, constants, references) (default: PlanRunner)


def write_library(plugin, lib, path: str) -> None:
    """Write `lib` to `path` the plugin's way (a cross target links with its own compiler)."""
    custom = getattr(plugin, "write_library", None)
    if custom is not None:
        custom(lib, path)
    else:
        lib.export_library(path)


def read_library(plugin, path: str):
    """The library at `path` as the plugin's runners take it (a cross target does not load it here)."""
    custom = getattr(plugin, "read_library", None)
    if custom is not None:
        return custom(path)
    import tvm

    return tvm.runtime.load_module(path)
