"""OpCost (the counts of one op) and pricing: counts -> time on a HardwareSpec.

Counting and pricing are separate: counting fills `flops` (matrix FLOPs, 2 per MAC),
`vector_flops` (exp/max/sum of softmax and norms, counted explicitly) and `bytes`
per memory level; `price` turns them into time with a roofline:
    compute = flops / (peak * eff_c) + vector_flops / (vector peak * eff_v)
    memory  = max over levels of bytes[level] / (bandwidth * eff_m)
    time    = max(compute, memory) * imbalance + launch overhead (per kernel class when the spec has one)
and names the bound: compute, memory, or latency when the launch overhead dominates.
Compute is priced on the FLOPs a kernel executes (`executed_flops`: whole tiles, so causal
and window masks cost the key blocks the kernel visits, not the ideal triangle) when the
counter knows them; `flops` stays the algorithmic count that reports and intensity use.
`imbalance` = ceil(tasks / units) · units / tasks when the spec names its parallel units and
the counter its parallel tasks (one task on a 2-core CPU runs on one core).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .hardware import HardwareSpec, get_hardware


@dataclass
class OpCost:
    """Counts and predicted time of one op on one device."""

    flops: float = 0.0
    vector_flops: float = 0.0
    bytes: dict[str, float] = field(default_factory=dict)   # memory level name -> bytes moved there
    main_level: str = "dram"
    kv_cache_bytes: float = 0.0          # KV cache resident after this op (all tokens, this layer)
    kv_bytes_per_token: float = 0.0      # per token per layer
    kv_read_bytes: float = 0.0           # main-memory bytes of K/V read by this op
    executed_flops: float | None = None  # matrix FLOPs the kernel executes (whole tiles); None: = flops
    executed_vector_flops: float | None = None
    parallel_tasks: int | None = None    # independent tasks the kernel splits into (None: unknown)
    compute_s: float = 0.0
    memory_s: float = 0.0
    launch_s: float = 0.0
    time_s: float = 0.0
    bound: str = ""
    energy_j: float | None = None        # joules per call, from devices with an energy model (optical-4f); else None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def main_bytes(self) -> float:
        """Bytes moved to/from main memory (HBM/DRAM)."""
        return self.bytes.get(self.main_level, 0.0)

    @property
    def intensity(self) -> float:
        """Matrix FLOPs per main-memory byte (the roofline x-axis)."""
        return self.flops / self.main_bytes if self.main_bytes else float("inf")

    @property
    def intensity_per_kv_byte(self) -> float:
        """Attention-core FLOPs (QKᵀ and PV, no projections) per byte of the K/V cache, each byte counted once
        (the algorithmic decode figure of merit; tile re-reads show in `intensity` instead)."""
        core = self.details.get("core_flops", self.flops)
        kv = self.details.get("kv_unique_bytes", self.kv_read_bytes)
        return core / kv if kv else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {"flops": self.flops, "vector_flops": self.vector_flops, "bytes": dict(self.bytes),
                "main_bytes": self.main_bytes, "intensity": self.intensity if self.main_bytes else None,
                "kv_cache_bytes": self.kv_cache_bytes, "kv_bytes_per_token": self.kv_bytes_per_token,
                "kv_read_bytes": self.kv_read_bytes, "compute_s": self.compute_s, "memory_s": self.memory_s,
                "launch_s": self.launch_s, "time_s": self.time_s, "bound": self.bound, "energy_j": self.energy_j, "notes": list(self.notes),
                "details": dict(self.details)}


def price(cost: OpCost, hardware: HardwareSpec | str, dtype: str, op_kind: str, launches: int = 1) -> OpCost:
    """Fill the time fields of `cost` for `hardware` (roofline + efficiency + launch overhead)."""
    hw = get_hardware(hardware)
    cost.main_level = hw.main_memory.name
    eff_c = hw.efficiency_for(op_kind, "compute")
    eff_v = hw.efficiency_for(op_kind, "vector")
    eff_m = hw.efficiency_for(op_kind, "memory")
    flops = cost.flops if cost.executed_flops is None else cost.executed_flops
    vflops = cost.vector_flops if cost.executed_vector_flops is None else cost.executed_vector_flops
    cost.compute_s = flops / (hw.peak_flops(dtype) * eff_c) + vflops / (hw.vector_flops(dtype) * eff_v)
    per_level = {}
    for name, b in cost.bytes.items():
        lv = hw.level(name)
        per_level[name] = b / (lv.bandwidth_bytes_per_s * eff_m)
    cost.memory_s = max(per_level.values(), default=0.0)
    imbalance = 1.0
    units = hw.parallel_units
    if units and cost.parallel_tasks:
        t = cost.parallel_tasks
        imbalance = -(-t // units) * units / t
        cost.compute_s *= imbalance
        cost.memory_s *= imbalance
    cost.launch_s = hw.launch_for(op_kind) * launches
    cost.time_s = max(cost.compute_s, cost.memory_s) + cost.launch_s
    if cost.time_s == 0.0:
        cost.bound = "none"   # a view: no work, no launch
    elif cost.launch_s > max(cost.compute_s, cost.memory_s):
        cost.bound = "latency"
    elif cost.compute_s >= cost.memory_s:
        cost.bound = "compute"
    else:
        slowest = max(per_level, key=per_level.get)
        cost.bound = "memory" if slowest == cost.main_level else f"memory({slowest})"
    cost.details["ridge_point"] = hw.ridge_point(dtype)
    cost.details["efficiency"] = {"kernel_class": op_kind, "compute": eff_c, "vector": eff_v, "memory": eff_m}
    if imbalance != 1.0:
        cost.details["parallel_imbalance"] = imbalance
    return cost
