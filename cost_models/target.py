"""The Target record: everything one compile target is, in one frozen value (no TVM).

Each target declares it in one file, `backends/<target>/record.py` (a function options -> Target); the
backends package registers those functions here, so the target-aware passes (tile, mla-absorb) receive
the record by name without importing a backend. A record says: the target's name, its TVM target, its
parsed options, its `Capabilities`, the catalog device it is priced as (cost_models/specs), that device's
parallel units, its default pipeline, the backend class that lowers for it, and the catalog devices whose
reports price its build (`target_for_device`: no table elsewhere maps devices to targets).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .capabilities import Capabilities


class TargetError(ValueError):
    """An unknown target name or a bad target option; the message names what is supported."""


@dataclass(frozen=True)
class Options:
    """Base of a target's parsed compile options. Subclasses declare typed fields with defaults."""

    @classmethod
    def parse(cls, target: str, options: Mapping[str, Any] | None):
        """The typed options of `target` from a user's dict (values may be text, as in a pipeline spec);
        keys this target does not know are ignored here (backend-wide keys such as `cache` share the dict)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, raw in (options or {}).items():
            if key not in fields or raw is None:
                continue
            kwargs[key] = _convert(target, key, raw, fields[key].type)
        return cls(**kwargs)

    def spec_items(self) -> list[str]:
        """`key=value` for every option that differs from its default (the text form in a pipeline)."""
        return [f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default]


def _convert(target: str, key: str, raw: Any, annotation: Any) -> Any:
    kind = str(annotation)
    if "int" in kind and not isinstance(raw, int):
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise TargetError(f"target {target!r}: option {key!r} must be an integer, got {raw!r}") from None
    if "tuple" in kind and isinstance(raw, str):
        return tuple(s for s in raw.split("+") if s)
    if "tuple" in kind:
        return tuple(raw)
    return raw


@dataclass(frozen=True, eq=False)
class Target:
    """One compile target with its options applied (see the module docstring)."""

    name: str                          # what users pass: attncc.compile(..., target=name)
    description: str
    backend: str                       # "package.module:Class" lowering for it ("" : nothing registered)
    options: Options                   # parsed, frozen
    tvm_target: Mapping[str, Any]      # the TVM target dict ({} for targets that generate no TVM code)
    capabilities: Capabilities | None  # vector width, on-chip bytes, dtypes, the kernels' tile rules
    device: str                        # the cost_models/specs catalog entry it is priced as
    parallel_units: int                # cores / SMs the decode split-KV plan fills (read from the device)
    pipeline: str                      # its default pass pipeline
    # the catalog devices whose reports price this target's build (`analyze(hardware=d)` groups kernels as this
    # target does; see target_for_device): `device` under every option value. () : none (the reference)
    devices: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "tvm_target", MappingProxyType(dict(self.tvm_target)))   # frozen all the way
        object.__setattr__(self, "devices", tuple(self.devices))
        if self.devices and self.device not in self.devices:
            raise TargetError(f"target {self.name!r}: device {self.device!r} is not among its devices {self.devices}")

    @property
    def spec(self) -> str:
        """The record as text, as target-aware passes take it: "cuda", "cuda:arch=sm_80"."""
        items = self.options.spec_items()
        return self.name + (":" + ";".join(items) if items else "")


TargetFactory = Callable[[Mapping[str, Any]], Target]
_FACTORIES: dict[str, TargetFactory] = {}


def register_target(name: str, factory: TargetFactory) -> None:
    """Make `name` resolvable by `target_record` (the backends package registers every target it lists)."""
    _FACTORIES[name] = factory


def registered_targets() -> list[str]:
    return list(_FACTORIES)


def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """"cuda:arch=sm_80;q_block=32" -> ("cuda", {"arch": "sm_80", "q_block": "32"})."""
    name, _, rest = spec.partition(":")
    opts = {}
    for item in filter(None, (s.strip() for s in rest.split(";"))):
        key, sep, val = item.partition("=")
        if not sep:
            raise TargetError(f"target spec {spec!r}: item {item!r} must be key=value (items separated by ';')")
        opts[key.strip()] = val.strip()
    return name.strip(), opts


def is_target(spec: str) -> bool:
    """True when `spec` names a registered target (not just a catalog device)."""
    return split_spec(spec)[0] in _FACTORIES


def target_record(spec: str, options: Mapping[str, Any] | None = None) -> Target:
    """The record of a registered target; `spec` may carry options ("cuda:arch=sm_80"), `options` add to them."""
    name, opts = split_spec(spec)
    if name not in _FACTORIES:
        raise TargetError(f"unknown target {name!r}; targets: {', '.join(_FACTORIES) or '(none registered)'}")
    return _FACTORIES[name]({**opts, **(options or {})})


def target_for_device(device: str) -> str | None:
    """The registered target whose build a report on catalog device `device` prices (the first record, at its
    default options, listing it in `devices`), or None: the device is priced op by op."""
    for name, factory in _FACTORIES.items():
        if device in factory({}).devices:
            return name
    return None


def device_record(device: str, units: int | None = None) -> Target:
    """A record for a catalog device that is not a compile target (e.g. `analyze(hardware="h100")`): priced on
    the device, no kernels, so no tile rules."""
    from .hardware import get_hardware

    hw = get_hardware(device)
    if units is None:
        units = hw.parallel_units or hw.level(hw.tile_level).units
    from ..ir.passes.pipelines import target_pipeline

    return Target(name=hw.name, description=hw.description, backend="", options=Options(), tvm_target={},
                  capabilities=None, device=hw.name, parallel_units=int(units),
                  pipeline=target_pipeline(hw.name, int(units)))
