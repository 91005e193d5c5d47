"""Backends (one per target family) behind one protocol. All TVM code lives under this package.

Backends are looked up lazily so importing attncc never imports TVM unless a TVM
target is used.
"""
from __future__ import annotations

import importlib
from functools import cached_property

from ..cost_models.target import Target, register_target
from ..cost_models.target import target_record as _target_record
from .base import Backend, Capabilities, Executable


class TargetInfo:
    """One registered target. A target with a record (backends/<target>/record.py: everything the target is) is
    named here by that record alone; its backend class, description and capabilities are read from the record
    (at default options, when first asked). A planned target without a record names them here."""

    def __init__(self, name: str, module: str = "", description: str = "", status: str = "available",
                 capabilities: str = "", record: str = ""):
        self.name, self.status, self.record = name, status, record   # record: "package.module:function"
        self._module, self._description, self._capabilities = module, description, capabilities

    @cached_property
    def default_record(self) -> Target | None:
        """The target's record at default options (None: no record)."""
        return _load(self.record)({}) if self.record else None

    @property
    def module(self) -> str:
        """"package.module:Class" implementing the Backend protocol."""
        return self.default_record.backend if self.record else self._module

    @property
    def description(self) -> str:
        return self.default_record.description if self.record else self._description

    def capabilities(self) -> Capabilities | None:
        """Its Capabilities without importing TVM (None where it declares none)."""
        if self.record:
            return self.default_record.capabilities
        return _load(self._capabilities)() if self._capabilities else None


# name -> the function (options -> Target) in the target's one file; nothing else about a target is said here
TARGETS: dict[str, TargetInfo] = {
    "reference": TargetInfo("reference", record="attncc.backends.reference:reference_record"),
    "cpu": TargetInfo("cpu", record="attncc.backends.cpu.record:cpu_record"),
    "cuda": TargetInfo("cuda", record="attncc.backends.cuda.record:cuda_record"),
    "mobile-cpu": TargetInfo("mobile-cpu", record="attncc.backends.mobile.cpu.record:mobile_cpu_record"),
    "mobile-gpu": TargetInfo("mobile-gpu", record="attncc.backends.mobile.gpu.record:mobile_gpu_record"),
    "optical": TargetInfo("optical", record="attncc.backends.optical.record:optical_record"),
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
    return None if info is None else info.capabilities()


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
