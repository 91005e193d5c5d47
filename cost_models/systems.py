"""Systems of many devices: a device spec, devices per node, and the links inside and between nodes.

Systems and links are data (`cost_models/specs/systems/*.json`, links in `links.json`), each number with its
source beside it. A link has a line rate per direction, a latency (NCCL's ring model: base + per step) and a
message-size efficiency `max / (1 + (half_bytes / bytes) ** exponent)` fitted to the collective table of
shared/ANCHORS.md (benchmarks/fit_collectives.py re-derives the fitted numbers). A calibrated link measured
on this host (`attncc calibrate --loopback`) lives in the attncc cache and wins over the shipped placeholder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hardware import HardwareError, HardwareSpec, cache_dir, get_hardware

SYSTEM_DIR = Path(__file__).parent / "specs" / "systems"


class SystemSpecError(HardwareError):
    """Unknown system or link, or a malformed system file; the message names it and what exists."""


@dataclass(frozen=True)
class Efficiency:
    """Fraction of the line rate a collective reaches at a message size: max / (1 + (half_bytes / bytes) ** exponent)."""

    max: float
    half_bytes: float
    exponent: float
    fit: str = ""

    def at(self, nbytes: float) -> float:
        if nbytes <= 0:
            return self.max
        return self.max / (1.0 + (self.half_bytes / nbytes) ** self.exponent)


@dataclass(frozen=True)
class Link:
    """One tier of interconnect (per GPU, per direction)."""

    name: str
    bandwidth_bytes_per_s: float
    latency_base_s: float
    latency_per_step_s: float
    efficiency: dict[str, Efficiency]
    description: str = ""
    sources: dict[str, str] = field(default_factory=dict)

    def efficiency_for(self, op: str) -> Efficiency:
        """The op's own curve (e.g. all_reduce with in-switch reduction), else the link's default."""
        return self.efficiency.get(op, self.efficiency["default"])


@dataclass(frozen=True)
class System:
    """A machine of `devices_per_node` devices per node (any number of nodes) and its two link tiers."""

    name: str
    device: HardwareSpec
    devices_per_node: int
    intra_node: Link
    inter_node: Link | None
    description: str = ""
    aliases: tuple[str, ...] = ()
    source: str = ""

    def link_for(self, ranks: int, spans_nodes: bool | None = None) -> Link:
        """The slowest link a group of `ranks` crosses (groups larger than a node cross the inter-node link)."""
        crosses = ranks > self.devices_per_node if spans_nodes is None else spans_nodes
        if not crosses:
            return self.intra_node
        if self.inter_node is None:
            raise SystemSpecError(f"system {self.name!r} has {self.devices_per_node} devices and no inter-node link; "
                                  f"a group of {ranks} ranks does not fit")
        return self.inter_node

    def to_dict(self) -> dict[str, Any]:
        link = lambda l: None if l is None else {"name": l.name, "bandwidth_bytes_per_s": l.bandwidth_bytes_per_s,  # noqa: E731
                                                 "latency_base_s": l.latency_base_s, "latency_per_step_s": l.latency_per_step_s}
        return {"name": self.name, "device": self.device.name, "devices_per_node": self.devices_per_node,
                "intra_node": link(self.intra_node), "inter_node": link(self.inter_node), "source": self.source}


def _link_from(name: str, d: dict[str, Any], where: str) -> Link:
    try:
        lat = d["latency"]
        eff = {op: Efficiency(float(e["max"]), float(e["half_bytes"]), float(e["exponent"]), e.get("fit", ""))
               for op, e in d["efficiency"].items()}
        if "default" not in eff:
            raise KeyError("efficiency.default")
        return Link(name, float(d["bandwidth_bytes_per_s"]), float(lat["base_s"]), float(lat["per_step_s"]), eff,
                    d.get("description", ""), {"bandwidth": d.get("bandwidth_source", ""), "latency": lat.get("source", "")})
    except KeyError as e:
        raise SystemSpecError(f"{where}: link {name!r} misses field {e.args[0]!r}") from None


def links() -> dict[str, Link]:
    """Every link in the catalog; a calibrated link in `cache_dir()/links.json` replaces the shipped one."""
    path = SYSTEM_DIR / "links.json"
    data = json.loads(path.read_text())
    calibrated = cache_dir() / "links.json"
    if calibrated.exists():
        data.update(json.loads(calibrated.read_text()))
    return {k: _link_from(k, v, str(path)) for k, v in data.items()}


def _system_files() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(SYSTEM_DIR.glob("*.json")) if p.stem != "links"}


def list_systems() -> list[str]:
    """Names of the systems in the catalog."""
    return list(_system_files())


def get_system(name: str | System) -> System:
    """The system for a name or alias (e.g. "dgx-h100", "hgx-h800", "host-loopback")."""
    if isinstance(name, System):
        return name
    files = _system_files()
    key = name if name in files else next((k for k, d in files.items() if name in d.get("aliases", ())), None)
    if key is None:
        raise SystemSpecError(f"unknown system {name!r}; known: {', '.join(files)} "
                              f"(aliases: {', '.join(a for d in files.values() for a in d.get('aliases', ()))})")
    d = files[key]
    catalog = links()
    where = str(SYSTEM_DIR / f"{key}.json")
    try:
        intra, inter = d["intra_node"], d.get("inter_node")
        for ln in (intra, inter):
            if ln is not None and ln not in catalog:
                raise SystemSpecError(f"{where}: unknown link {ln!r}; links: {', '.join(catalog)}")
        return System(key, get_hardware(d["device"]), int(d["devices_per_node"]), catalog[intra],
                      catalog[inter] if inter else None, d.get("description", ""), tuple(d.get("aliases", ())),
                      d.get("source", ""))
    except KeyError as e:
        raise SystemSpecError(f"{where}: misses field {e.args[0]!r}") from None


def custom_system(device: str | HardwareSpec, link_bandwidth_bytes_per_s: float, devices_per_node: int = 1 << 20,
                  name: str = "custom", latency_s: float = 0.0) -> System:
    """A system whose every pair of devices talks over one ideal link at `link_bandwidth_bytes_per_s` (efficiency 1,
    latency `latency_s`): how papers state their back-of-envelope limits (e.g. "over a 50 GB/s link")."""
    link = Link(f"{name}-link", float(link_bandwidth_bytes_per_s), float(latency_s), 0.0,
                {"default": Efficiency(1.0, 0.0, 1.0, "ideal: the line rate at every size")}, "an ideal link")
    return System(name, get_hardware(device), devices_per_node, link, link, "custom system with one ideal link")
