"""Hardware specs: compute units per dtype, a memory hierarchy, launch overhead, efficiency.

Specs are data files (`cost_models/specs/*.json`), one per device, with a `source`
for every number. The schema is target-neutral: a list of compute units (each a
peak FLOP/s per dtype) and a list of memory levels ordered from the innermost
(on-chip, tiled for) to main memory. A calibrated host spec written by
`calibrate_host()` (under $ATTNCC_CACHE_DIR or ~/.cache/attncc) wins over the
shipped default for "host-cpu".
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_DIR = Path(__file__).parent / "specs"


class HardwareError(ValueError):
    """Unknown device or a malformed spec; the message names the device and field."""


@dataclass(frozen=True)
class MemoryLevel:
    """One memory level. `capacity_bytes` is per unit when `per_unit` (e.g. shared memory per SM)."""

    name: str
    capacity_bytes: int
    bandwidth_bytes_per_s: float
    per_unit: bool = False
    units: int = 1
    on_chip: bool = True
    source: str = ""


@dataclass(frozen=True)
class ComputeUnit:
    """A class of arithmetic units (tensor cores, SIMD lanes, an optical correlator) with peak FLOP/s per dtype."""

    name: str
    peak_flops: dict[str, float]
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class HardwareSpec:
    """A device for the cost model. See module docstring for the schema."""

    name: str
    description: str
    kind: str
    compute_units: tuple[ComputeUnit, ...]
    levels: tuple[MemoryLevel, ...]
    tile_level: str
    launch_overhead_s: float
    efficiency: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    path: str = ""

    # ---- memory -------------------------------------------------------------------
    @property
    def main_memory(self) -> MemoryLevel:
        """The outermost level (HBM / DRAM): where weights, activations and the KV cache live."""
        return self.levels[-1]

    def level(self, name: str) -> MemoryLevel:
        for lv in self.levels:
            if lv.name == name:
                return lv
        raise HardwareError(f"{self.name} has no memory level {name!r}; levels: {[lv.name for lv in self.levels]}")

    @property
    def on_chip_bytes(self) -> int:
        """Capacity of the level attention tiles must fit (per SM / per core)."""
        return self.level(self.tile_level).capacity_bytes

    @property
    def on_chip_levels(self) -> list[MemoryLevel]:
        return [lv for lv in self.levels if lv.on_chip]

    # ---- compute ------------------------------------------------------------------
    def peak_flops(self, dtype: str, unit: str | None = None) -> float:
        """Best peak FLOP/s for `dtype` (on `unit` when given). Falls back to float32 when a dtype is not listed."""
        units = [u for u in self.compute_units if unit is None or u.name == unit]
        if not units:
            raise HardwareError(f"{self.name} has no compute unit {unit!r}; units: {[u.name for u in self.compute_units]}")
        for dt in (dtype, "float32"):
            rates = [u.peak_flops[dt] for u in units if dt in u.peak_flops]
            if rates:
                return max(rates)
        raise HardwareError(f"{self.name} lists no FLOP rate for {dtype} or float32")

    def vector_flops(self, dtype: str) -> float:
        """Peak of the non-matrix unit (exp, max, sums in softmax and norms): the slowest unit listing the dtype."""
        rates = [u.peak_flops.get(dtype, u.peak_flops.get("float32")) for u in self.compute_units]
        rates = [r for r in rates if r]
        return min(rates) if rates else self.peak_flops(dtype)

    def ridge_point(self, dtype: str) -> float:
        """FLOP per main-memory byte where compute time equals memory time."""
        return self.peak_flops(dtype) / self.main_memory.bandwidth_bytes_per_s

    def efficiency_for(self, op_kind: str, resource: str) -> float:
        """Fraction of peak reached for `resource` ("compute" | "vector" | "memory") by ops of `op_kind`.

        A dotted kind ("attention.decode") falls back to its parent ("attention"), then to the
        spec-wide factor; "vector" (softmax/norm work) falls back to "compute".
        """
        by_op = self.efficiency.get("by_op", {})
        parts = op_kind.split(".")
        for key in [".".join(parts[:i]) for i in range(len(parts), 0, -1)]:
            entry = by_op.get(key, {})
            for res in (resource, "compute") if resource == "vector" else (resource,):
                if res in entry:
                    return float(entry[res])
        if resource == "vector" and "vector" not in self.efficiency:
            resource = "compute"
        return float(self.efficiency.get(resource, 1.0))

    def launch_for(self, op_kind: str) -> float:
        """Seconds of fixed cost per call of a kernel of `op_kind` (efficiency.by_op[kind].launch_s,
        dotted kinds falling back to their parent, else the spec's launch_overhead_s)."""
        by_op = self.efficiency.get("by_op", {})
        parts = op_kind.split(".")
        for key in [".".join(parts[:i]) for i in range(len(parts), 0, -1)]:
            if "launch_s" in by_op.get(key, {}):
                return float(by_op[key]["launch_s"])
        return self.launch_overhead_s

    @property
    def parallel_units(self) -> int | None:
        """Cores / SMs a kernel's parallel tasks are spread over (None: not modelled)."""
        n = self.extra.get("parallel_units")
        return int(n) if n else None

    @property
    def provenance(self) -> str:
        """Where the figures come from, for report headers: "calibrated, FILE, DATE" or "default spec"."""
        if self.extra.get("uncalibrated"):
            from .host_match import UNCALIBRATED

            return UNCALIBRATED
        stamp = self.extra.get("calibrated")
        if stamp:
            return f"calibrated, {self.path or 'not saved'}, {stamp}"
        return "default spec"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "aliases": list(self.aliases), "description": self.description, "kind": self.kind,
            "compute_units": [{"name": u.name, "peak_flops": u.peak_flops, "source": u.source, "note": u.note}
                              for u in self.compute_units],
            "levels": [lv.__dict__ for lv in self.levels], "tile_level": self.tile_level,
            "launch_overhead_s": self.launch_overhead_s, "efficiency": self.efficiency, **self.extra,
        }


def with_cuda_graphs(hw: HardwareSpec) -> HardwareSpec:
    """`hw` with every kernel's launch overhead priced as a CUDA-graph replay (the spec's cited
    `launch_graph_s`), as decode loops in vLLM, TensorRT-LLM and gpt-fast run; HardwareError for a
    device without that figure (CPUs, OpenCL GPUs, the optical model)."""
    graph_s = hw.extra.get("launch_graph_s")
    if graph_s is None:
        graphs = [n for n in list_hardware() if "launch_graph_s" in json.loads((SPEC_DIR / f"{n}.json").read_text())]
        raise HardwareError(f"{hw.name} has no CUDA-graph launch figure (launch_graph_s); cuda_graphs applies to "
                            f"{', '.join(graphs)}")
    by_op = {k: {f: v for f, v in e.items() if f != "launch_s"} for k, e in hw.efficiency.get("by_op", {}).items()}
    extra = {**hw.extra, "launch_eager_s": hw.launch_overhead_s}
    return dataclasses.replace(hw, launch_overhead_s=float(graph_s), efficiency={**hw.efficiency, "by_op": by_op},
                               extra=extra)


def spec_from_dict(d: dict[str, Any], path: str = "") -> HardwareSpec:
    """Build a HardwareSpec from its JSON form; errors name the file and missing field."""
    where = path or d.get("name", "<spec>")
    try:
        units = tuple(ComputeUnit(u["name"], {k: float(v) for k, v in u["peak_flops"].items()}, u.get("source", ""),
                                  u.get("note", "")) for u in d["compute_units"])
        levels = tuple(MemoryLevel(lv["name"], int(lv["capacity_bytes"]), float(lv["bandwidth_bytes_per_s"]),
                                   bool(lv.get("per_unit", False)), int(lv.get("units", 1)), bool(lv.get("on_chip", True)),
                                   lv.get("source", "")) for lv in d["levels"])
        known = {"name", "aliases", "description", "kind", "compute_units", "levels", "tile_level",
                 "launch_overhead_s", "efficiency"}
        spec = HardwareSpec(d["name"], d.get("description", ""), d.get("kind", "unknown"), units, levels,
                            d["tile_level"], float(d["launch_overhead_s"]), dict(d.get("efficiency", {})),
                            tuple(d.get("aliases", ())), {k: v for k, v in d.items() if k not in known}, path)
    except KeyError as e:
        raise HardwareError(f"hardware spec {where} misses field {e.args[0]!r}") from None
    spec.level(spec.tile_level)  # validates tile_level
    if not levels or levels[-1].on_chip:
        raise HardwareError(f"hardware spec {where}: the last level must be off-chip main memory")
    return spec


def cache_dir() -> Path:
    """Where calibrated specs live: $ATTNCC_CACHE_DIR, else ~/.cache/attncc."""
    return Path(os.environ.get("ATTNCC_CACHE_DIR") or Path.home() / ".cache" / "attncc")


def _catalog() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SPEC_DIR.glob("*.json"))}


def list_hardware() -> list[str]:
    """Names of the devices in the catalog."""
    return list(_catalog())


def get_hardware(name: str | HardwareSpec) -> HardwareSpec:
    """The spec for a device name or alias; "host-cpu" prefers a calibrated spec from `cache_dir()`."""
    if isinstance(name, HardwareSpec):
        return name
    catalog = _catalog()
    specs = {k: json.loads(p.read_text()) for k, p in catalog.items()}
    key = name if name in specs else next((k for k, d in specs.items() if name in d.get("aliases", ())), None)
    if key is None:
        raise HardwareError(f"unknown hardware {name!r}; known: {', '.join(catalog)} "
                            f"(aliases: {', '.join(a for d in specs.values() for a in d.get('aliases', ()))})")
    if key == "host-cpu":
        calibrated = cache_dir() / "host-cpu.json"
        if calibrated.exists():
            return _on_this_host(spec_from_dict(json.loads(calibrated.read_text()), str(calibrated)))
        return _on_this_host(spec_from_dict(specs[key], str(catalog[key])))
    return spec_from_dict(specs[key], str(catalog[key]))


def _on_this_host(spec: HardwareSpec) -> HardwareSpec:
    """A host spec measured on another CPU: its description and provenance say it is uncalibrated here
    instead of naming a CPU this machine is not (the measured host stays in `extra["host"]`)."""
    from .host_match import UNCALIBRATED, host_mismatch

    why = host_mismatch(spec.extra.get("host"))
    if why is None:
        return spec
    return dataclasses.replace(spec, description=f"{UNCALIBRATED}: {why}",
                               extra={**spec.extra, "calibrated": None, "uncalibrated": why})
