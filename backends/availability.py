"""Whether this machine has what each target needs to BUILD (compile, export) and to RUN (execute here).

`attncc targets` prints it. Every check is a lookup (PATH, an importable module, a device node, the OpenCL
platform list); nothing is compiled and TVM is not imported, so the answer is fast and never crashes. A
missing piece is named with how to get it.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """One side (build or run) of one target: `ok` and, when not ok, what is missing and how to get it."""

    ok: bool
    detail: str   # what it uses when ok; what is missing (and the fix) when not

    def text(self) -> str:
        return ("yes" if self.ok else "NO") + f" ({self.detail})"


def _have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _tvm() -> Need | None:
    """None when apache-tvm is importable, else the missing piece (every TVM target builds with it)."""
    if _have_module("tvm"):
        return None
    return Need(False, "apache-tvm is not installed: pip install -c constraints-ci.txt -e .")


def _opencl_devices() -> tuple[str | None, str | None]:
    """(the OpenCL device mobile-gpu would run on, why none): the first listed device that builds a kernel."""
    if not _have_module("pyopencl"):
        return None, "pyopencl is not installed (pip install pyopencl) and an OpenCL device (apt-get install pocl-opencl-icd)"
    from .mobile.gpu.spec import opencl_device_index

    index, why = opencl_device_index()
    if index is None:
        return None, f"no OpenCL device that builds kernels ({why}); apt-get install pocl-opencl-icd gives a CPU device"
    import pyopencl as cl

    return [d for p in cl.get_platforms() for d in p.get_devices()][index].name, None


def target_needs(name: str) -> tuple[Need, Need]:
    """(build, run) for target `name` on this machine (both not-ok and saying so for a target it does not know)."""
    host = Need(True, "numpy")
    if name in ("reference", "optical"):
        return host, Need(True, "numpy; a simulation" if name == "optical" else "numpy")
    tvm = _tvm()
    if name == "cpu":
        need = tvm or Need(True, "TVM/LLVM")
        return need, need
    if name == "cuda":
        from .cuda.capabilities import cuda_device_present
        from .cuda.nvcc import find_nvcc

        nvcc = find_nvcc()
        build = tvm or (Need(True, f"TVM CUDA codegen + nvcc at {nvcc}") if nvcc else
                        Need(False, "nvcc is missing (CUDA toolkit; on PATH, $CUDA_HOME or /usr/local/cuda)"))
        run = (Need(True, "a CUDA device (/dev/nvidia0)") if cuda_device_present() else
               Need(False, "no CUDA GPU here (no /dev/nvidia*): export, then run on a GPU machine"))
        return build, run
    if name == "mobile-cpu":
        from .mobile.cpu.cross import CROSS_CC_ENV
        from .mobile.cpu.emulate import unavailable

        cc = os.environ.get(CROSS_CC_ENV, "aarch64-linux-gnu-gcc")
        path = shutil.which(cc)
        build = tvm or (Need(True, f"TVM/LLVM + {cc}") if path else
                        Need(False, f"{cc} is missing (apt-get install gcc-aarch64-linux-gnu, or set {CROSS_CC_ENV})"))
        why = unavailable()
        run = (Need(True, "qemu-aarch64-static + aarch64 sysroot (correctness only), or a board via TVM RPC")
               if why is None else Need(False, f"{why}; or a board via TVM RPC (python -m attncc.backends.mobile.cpu.rpc)"))
        return build, run
    if name == "mobile-gpu":
        device, why = _opencl_devices()
        run = Need(True, f"OpenCL device '{device}'") if device else Need(False, why or "no OpenCL device")
        return tvm or Need(True, "TVM OpenCL codegen"), run
    unknown = Need(False, f"not checked: availability.py has no check for target '{name}'")
    return unknown, unknown


__all__ = ["Need", "target_needs"]
