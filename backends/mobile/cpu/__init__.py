"""`mobile-cpu`: aarch64 NEON (Cortex-A76 baseline: Armv8.2-A + fp16 + dotprod) through TVM/LLVM.

A plugin on the shared core (backends/core). Kernels are cross-compiled for aarch64 and cross-linked with
`aarch64-linux-gnu-gcc`; they never load in this (x86) process. `emulate.py` runs an exported folder under
`qemu-aarch64-static` with an aarch64 Python + TVM runtime (tests/tools/arm64_sysroot.sh builds one).

Importing this package imports no TVM (the capabilities are read from the cost-model catalog).
"""
from __future__ import annotations


def __getattr__(name: str):
    # the backend class pulls in TVM: load it only when asked for
    if name == "MobileCpuBackend":
        from .backend import MobileCpuBackend

        return MobileCpuBackend
    raise AttributeError(name)


__all__ = ["MobileCpuBackend"]
