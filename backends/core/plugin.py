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
    `compute` defines the fp32 accumulator over (B, M, K) x packed-or-plain B; `schedule` tiles it (`tile`: the
    tile pass's record for the matmul node, graph.metadata["tiling"]; a strategy that builds recorded tiles reads it).
    """

    gate_cols: int            # output columns per gated panel (0: the target has no gated matmul)
    panel: int                # columns per packed weight panel

    def packed_shape(self, k: int, n: int) -> tuple[int, ...]: ...

    def pack_weight(self, w: np.ndarray) -> np.ndarray: ...

    def pack_gated(self, w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray: ...

    def compute(self, a, b, n: int, packed: bool, name: str): ...

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None, tile: dict | None = None) -> None: ...


class TargetPlugin:
    """One target family as named stages on the core (docs/adding-a-target.md). Subclass it and override only
    what differs; the core calls nothing else target-specific. In the order the core runs them:

    1. parse options  `record(options)` -> the target's Target record (backends/<target>/record.py);
                      `tvm_target(options)` -> its TVM target dict (default: the record's)
    2. lower          the core; the plugin gives `schedule(kind)`, `matmul`, `attention_primfunc(cfg, target)`
                      and may check the decomposed graph first (`check_graph`)
    3. build library  `build_library(plan, target)` -> one library holding every kernel of a build
    4. save / load    `save_library(lib, path)`, `load_library(path)` (cache entries and export folders)
    5. make runner    `make_runner(plan, lib, constants, references, library_path)` -> what a call runs;
                      `prepare_runtime(target)` readies this process first
    6. export extras  `export_extras(program, directory, files)` adds or replaces files of the core's folder
    """

    name: str = ""                # the target's name (its record's NAME); everything else it is: the record
    matmul: MatmulStrategy        # default (__init__ of this class): weights [K, N], fp32 accumulator, unscheduled
    conv_schedule: Schedule | None = None   # direct (grouped/depthwise) convolutions; None: the "generic" schedule
    per_shape_reason: str | None = None   # why this target never makes shape-generic builds (None: it does)
    attention_mask_full = False           # its attention kernel takes the mask only full-size (b, h, sq, skv)

    def __init__(self):
        from .matmul import PlainMatmul

        self.matmul = PlainMatmul()

    # 1. parse options
    def record(self, options: dict[str, Any] | None = None):
        """This target's Target record for these compile options (cost_models/target.py)."""
        from ...cost_models.target import target_record

        return target_record(self.name, options)

    @property
    def description(self) -> str:
        """One line for `attncc targets` (the record's)."""
        return self.record().description

    @property
    def hardware(self) -> str:
        """The catalog device the report prices (the record's device)."""
        return self.record().device

    @property
    def capabilities(self) -> Capabilities:
        return self.record().capabilities

    def tvm_target(self, options: dict[str, Any]) -> dict:
        """The TVM target dict for these compile options."""
        return dict(self.record(options).tvm_target)

    # 2. lower
    def check_graph(self, graph, target: dict, options: dict[str, Any]) -> None:
        """Reject a decomposed graph this target cannot build, before any codegen (default: accept)."""

    def schedule(self, kind: str) -> Schedule:
        """The schedule for a kernel class: "injective", "rows" or "generic"."""
        raise NotImplementedError

    def attention_primfunc(self, cfg: AttentionKernelConfig, target: dict):
        """(PrimFunc over (q, k, v[, mask], out), metadata) of the attention kernel for `cfg`, built into
        the plan's one library by the core; raising sends the node to the core's generic attention (noted)."""
        raise NotImplementedError

    # 3. build library
    def build_library(self, plan, target: dict):
        """The one library of a build (default: TVM's build of every PrimFunc of the plan for `target`)."""
        from .builder import compile_funcs

        return compile_funcs(plan, target)

    # 4. save / load
    def save_library(self, lib, path: str) -> None:
        """Write a built library to `path` (default: lib.export_library, the host's cc)."""
        lib.export_library(path)

    def load_library(self, path: str):
        """The library at `path` as this target's runners take it (default: loaded into this process by TVM's
        runtime, without its compiler)."""
        from .runtime import load_module

        return load_module(path)

    # 5. make runner
    def prepare_runtime(self, target: dict) -> list[str]:
        """Make this process ready to run the target's code; returns notes for the user."""
        return []

    def make_runner(self, plan, lib, constants: dict, references: dict, library_path: str | None = None):
        """What a call of a build runs (default: the plan on TVM's runtime in this process)."""
        from .runner import PlanRunner

        runner = PlanRunner(plan, lib, constants, references)
        runner.library_path = library_path
        return runner

    # 6. export extras
    def export_extras(self, program, directory: str, files: list[str]) -> list[str]:
        """The export folder's files after adding this target's own (default: the core's folder as is)."""
        return files


def write_library(plugin, lib, path: str) -> None:
    """Write `lib` to `path` the plugin's way (a cross target links with its own compiler)."""
    plugin.save_library(lib, path)


def read_library(plugin, path: str):
    """The library at `path` as the plugin's runners take it (a cross target does not load it here)."""
    return plugin.load_library(path)
