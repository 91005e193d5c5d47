"""The `mobile-cpu` TargetPlugin: aarch64 NEON code for a phone CPU, cross-compiled; runs here only emulated."""
from __future__ import annotations

from . import cross
from .attention import attention_primfunc as _attention_primfunc
from ...core.plugin import TargetPlugin
from .emulate import EmulatedRunner
from .matmul import NeonMatmul
from .record import NAME
from .schedules import SCHEDULES


class MobileCpuPlugin(TargetPlugin):
    """aarch64 (Cortex-A76 baseline, NEON + fp16 + dotprod) through TVM/LLVM, linked with aarch64-linux-gnu-gcc."""

    name = NAME

    def __init__(self):   # options, TVM target (aarch64 LLVM from the spec), capabilities: record.py
        self.matmul = NeonMatmul()

    def schedule(self, kind: str):
        if kind not in SCHEDULES:
            raise ValueError(f"mobile-cpu has no {kind!r} schedule; kinds: {', '.join(SCHEDULES)}")
        return SCHEDULES[kind]

    def attention_primfunc(self, cfg, target: dict):
        return _attention_primfunc(cfg, target)

    def prepare_runtime(self, target: dict) -> list[str]:
        return [f"mobile-cpu builds aarch64 code ({target.get('mcpu')}); in this process a call runs it under "
                "qemu-aarch64 emulation (correctness only: emulated timings say nothing about a phone)"]

    def save_library(self, lib, path: str) -> None:
        """Linked with aarch64-linux-gnu-gcc, LLVM IR and assembly beside it."""
        cross.write_library(lib, path)

    def load_library(self, path: str):
        """Never loaded here (aarch64): its path."""
        return cross.read_library(path)

    def make_runner(self, plan, lib, constants: dict, references: dict, library_path: str | None = None):
        """Calls here run the aarch64 build under qemu."""
        runner = EmulatedRunner(plan, lib, constants, references)
        runner.library_path = library_path
        return runner
