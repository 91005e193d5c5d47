"""The `cpu` target plugin: host LLVM target, CPU schedules, packed-panel matmuls, flash attention kernels."""
from __future__ import annotations


import numpy as np

from . import packing as _pack
from ..core.plugin import TargetPlugin
from .record import NAME
from .target import ensure_thread_pool

# schedules, kernels and matmul computes import TVM (its compiler): only a build loads them, so a compile
# whose builds are all cached runs on TVM's runtime alone


class CpuMatmul:
    """Weights packed into 32-column panels; rows x 32 register tiles, the tile pass's recorded tile
    (backends/cpu/matmul.py, cost_models/register_tile.py)."""

    gate_cols = _pack.GATE_COLS
    panel = _pack.PANEL

    def packed_shape(self, k: int, n: int) -> tuple[int, ...]:
        return _pack.packed_shape(k, n)

    def pack_weight(self, w: np.ndarray) -> np.ndarray:
        return _pack.pack_weight(w)

    def pack_gated(self, w_gate: np.ndarray, w_up: np.ndarray) -> np.ndarray:
        return _pack.pack_gated(w_gate, w_up)

    def compute(self, a, b, n: int, packed: bool, name: str):
        from . import matmul as _mm

        return _mm.matmul_compute(a, b, n, packed, name)

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None, tile: dict | None = None) -> None:
        """`tile`: the tile pass's record for the matmul node (graph.metadata["tiling"]), built when it fits."""
        from . import matmul as _mm

        _mm.schedule_matmul(sch, root, acc, max_cols or _pack.PANEL, tile)


_SCHEDULES = {"injective": "schedule_injective", "rows": "schedule_rows", "generic": "schedule_generic"}


class CpuPlugin(TargetPlugin):
    """Host CPU through TVM/LLVM (x86-64 AVX2/AVX-512). Its options, TVM target (the host's, or options
    mcpu / num_cores), capabilities and device are its record's (record.py); the core's stages build, save,
    load and run its libraries."""

    name = NAME

    def __init__(self):
        self.matmul = CpuMatmul()

    @property
    def conv_schedule(self):
        """Direct (grouped/depthwise) convolutions."""
        from . import conv as _conv

        return _conv.schedule_conv_direct

    def schedule(self, kind: str):
        from . import schedules as _sched

        return getattr(_sched, _SCHEDULES[kind])

    def build_attention_kernel(self, cfg, target: dict):
        from .attention import build_attention_kernel

        return build_attention_kernel(cfg, target=target)

    def attention_primfunc(self, cfg, target: dict):
        """(PrimFunc, {"kind", "schedule"}) of the flash kernel for `cfg`, not yet compiled."""
        import dataclasses

        from .attention.build import make_primfunc

        threads = int(target.get("num-cores", 0)) or None
        func, schedule, kind = make_primfunc(cfg, None, threads)
        return func, {"kind": kind, "schedule": dataclasses.asdict(schedule)}

    def build_library(self, plan, target: dict):
        """Every kernel of the plan in one shared library, compiled by parallel workers, linked and loaded."""
        from ..core.host_build import build_host_library

        return build_host_library(plan, target)

    def save_library(self, lib, path: str) -> None:
        """A copy of the built library's file (or TVM's export of a module built elsewhere)."""
        from ..core.host_build import save_host_library

        save_host_library(lib, path)

    def load_attention_kernel(self, path: str, cfg, target: dict, metadata: dict):
        from .attention import load_attention_kernel

        return load_attention_kernel(path, cfg, target, metadata)

    def prepare_runtime(self, target: dict) -> list[str]:
        cores = int(target.get("num-cores", 0)) or None
        threads = ensure_thread_pool(cores)
        if cores and threads < cores:
            return [f"TVM's thread pool has {threads} thread(s) for {cores} cores: it was created before attncc "
                    f"could size it; set TVM_NUM_THREADS={cores} before starting"]
        return []
