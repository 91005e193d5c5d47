"""Backends (one per target family) behind one protocol. All TVM code lives under this package.

Backends are looked up lazily so importing attncc never imports TVM unless a TVM
target is used.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..cost_models.target import Target, register_target
from ..cost_models.target import target_record as _target_record
from .base import Backend, Capabilities, Executable


@dataclass(frozen=True)
class TargetInfo:
    name: str
    module: str           # "package.module:Class" that implements the Backend protocol
    description: str
    status: str           # "available" | "planned"
    capabilities: str = ""  # "package.module:function" returning its Capabilities without importing TVM
    record: str = ""      # "package.module:function" options -> its Target record (TVM-free; one file per target)


TARGETS: dict[str, TargetInfo] = {
    "reference": TargetInfo("reference", "attncc.backends.reference:ReferenceBackend",
                            "numpy reference interpreter (numerics oracle)", "available",
                            record="attncc.backends.reference:reference_record"),
    "cpu": TargetInfo("cpu", "attncc.backends.cpu.backend:CpuBackend",
                      "host CPU through TVM/LLVM (x86-64 AVX2/AVX-512)", "available",
                      "attncc.backends.cpu.capabilities:cpu_capabilities", "attncc.backends.cpu.record:cpu_record"),
    "cuda": TargetInfo("cuda", "attncc.backends.cuda.backend:CudaBackend",
                       "NVIDIA GPU sm_80/sm_90a through TVM CUDA codegen, kernels AOT-compiled by nvcc", "available",
                       "attncc.backends.cuda.capabilities:cuda_capabilities", "attncc.backends.cuda.record:cuda_record"),
    "mobile-cpu": TargetInfo("mobile-cpu", "attncc.backends.mobile.cpu:MobileCpuBackend",
                             "aarch64 NEON (Cortex-A76 baseline, fp16, dotprod), cross-compiled", "available",
                             "attncc.backends.mobile.cpu.capabilities:mobile_cpu_capabilities",
                             "attncc.backends.mobile.cpu.record:mobile_cpu_record"),
    "mobile-gpu": TargetInfo("mobile-gpu", "attncc.backends.mobile.gpu.backend:MobileGpuBackend",
                             "OpenCL GPU (Adreno 640 / Mali-G76 class limits), run here through pyopencl", "available",
                             "attncc.backends.mobile.gpu.spec:mobile_gpu_capabilities",
                             "attncc.backends.mobile.gpu.record:mobile_gpu_record"),
    "optical": TargetInfo("optical", "attncc.backends.optical.backend:OpticalBackend",
                          "simulated free-space 4f optical accelerator", "available",
                          record="attncc.backends.optical.record:optical_record"),
}


def _load(path: str):
    mod, fn = path.split(":")
    return getattr(importlib.import_module(mod), fn)


def target_record(name: str, options: dict | None = None) -> Target:
    """The Target record of a registered target for these compile options (TVM-free)."""
    return _target_record(name, options)


# the target-aware passes resolve target names through cost_models' registry: fill it from this table
for _info in TARGETS.values():
    if _info.record:
        register_target(_info.name, lambda opts, _path=_info.record: _load(_path)(opts))

_INSTANCES: dict[str, Backend] = {}


class UnknownTargetError(ValueError):
    """A target name that is not registered or not available yet."""


def target_capabilities(name: str) -> Capabilities | None:
    """A target's Capabilities without importing TVM (None for targets that declare none)."""
    info = TARGETS.get(name)
    if info is None or not info.capabilities:
        return None
    return _load(info.capabilities)()


def get_backend(name: str) -> Backend:
    """The backend object for a target name; clear errors for unknown or planned targets."""
    if name not in TARGETS:
        raise UnknownTargetError(f"unknown target {name!r}; targets: {', '.join(TARGETS)}")
    info = TARGETS[name]
    if info.status != "available":
        raise UnknownTargetError(f"target {name!r} ({info.description}) is planned but not implemented yet; "
                                 f"available: {', '.join(k for k, t in TARGETS.items() if t.status == 'available')}")
    if name not in _INSTANCES:
        mod, cls = info.module.split(":")
        _INSTANCES[name] = getattr(importlib.import_module(mod), cls)()
    return _INSTANCES[name]


__all__ = ["Backend", "Capabilities", "Executable", "TARGETS", "Target", "TargetInfo", "get_backend",
           "target_capabilities", "target_record",
           "UnknownTargetError"]
