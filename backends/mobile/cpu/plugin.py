"""The `mobile-cpu` TargetPlugin: aarch64 NEON code for a phone CPU, cross-compiled; runs here only emulated."""
from __future__ import annotations

from typing import Any

from . import cross
from .attention import attention_primfunc as _attention_primfunc
from .capabilities import SPEC, mobile_cpu_capabilities
from .emulate import EmulatedRunner
from .matmul import NeonMatmul
from .schedules import SCHEDULES
from .target import mobile_target


class MobileCpuPlugin:
    """aarch64 (Cortex-A76 baseline, NEON + fp16 + dotprod) through TVM/LLVM, linked with aarch64-linux-gnu-gcc."""

    name = "mobile-cpu"
    description = "aarch64 NEON (Cortex-A76 baseline: fp16, dotprod), cross-compiled"
    hardware = SPEC
    runner_class = EmulatedRunner          # calls here run the aarch64 build under qemu

    def __init__(self):
        self.capabilities = mobile_cpu_capabilities()   # read from cost_models/specs/mobile-cpu.json
        self.matmul = NeonMatmul()

    def tvm_target(self, options: dict[str, Any]) -> dict:
        """The spec's aarch64 LLVM target; options may name another "mcpu", "mattr" or "num_cores"."""
        return mobile_target(options)

    def schedule(self, kind: str):
        if kind not in SCHEDULES:
            raise ValueError(f"mobile-cpu has no {kind!r} schedule; kinds: {', '.join(SCHEDULES)}")
        return SCHEDULES[kind]

    def attention_primfunc(self, cfg, target: dict):
        return _attention_primfunc(cfg, target)

    def prepare_runtime(self, target: dict) -> list[str]:
        return [f"mobile-cpu builds aarch64 code ({target.get('mcpu')}); in this process a call runs it under "
                "qemu-aarch64 emulation (correctness only: emulated timings say nothing about a phone)"]

    @staticmethod
    def write_library(lib, path: str) -> None:
        cross.write_library(lib, path)

    @staticmethod
    def read_library(path: str):
        return cross.read_library(path)
