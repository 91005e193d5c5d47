"""CostReport: a row per op, totals, peak memory, KV cache; text / JSON / HTML forms."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .hardware import HardwareSpec
from .pricing import OpCost


def human(x: float, unit: str = "") -> str:
    """1234567 -> '1.23M' (SI prefixes)."""
    for div, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{p}{unit}"
    return f"{x:.3g}{unit}"


def human_time(s: float) -> str:
    for div, u in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if s >= div:
            return f"{s / div:.3g} {u}"
    return f"{s / 1e-9:.3g} ns"


def human_energy(j: float) -> str:
    for div, u in ((1.0, "J"), (1e-3, "mJ"), (1e-6, "uJ")):
        if abs(j) >= div:
            return f"{j / div:.3g} {u}"
    return f"{j / 1e-9:.3g} nJ"


@dataclass
class Row:
    """One priced op."""

    name: str
    kind: str
    variant: str
    cost: OpCost
    share: float = 0.0
    # how the compiled model ran this node when not as a generated kernel ("numpy reference", "generic schedule")
    lowering: str = ""
    # kernel rows (analyze_graph with fusion rules): the IR ops this kernel computes and its kernel class;
    # empty for per-op rows (a device priced op by op, e.g. the optical 4f model)
    ops: list[str] = field(default_factory=list)
    kernel_class: str = ""

    @property
    def energy_j(self) -> float | None:
        """Joules of this op on devices with an energy model (optical-4f), else None."""
        return self.cost.energy_j

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "variant": self.variant, "share": self.share,
                **({"lowering": self.lowering} if self.lowering else {}),
                **({"ops": list(self.ops), "kernel_class": self.kernel_class} if self.ops else {}), **self.cost.to_dict()}


@dataclass
class CostReport:
    """Priced graph. `rows` in topological order; totals are sums over rows."""

    rows: list[Row]
    hardware: HardwareSpec
    phase: str = "prefill"
    dims: dict[str, int] = field(default_factory=dict)
    weights_bytes: int = 0
    peak_memory_bytes: int = 0
    graph_name: str = "main"
    dtype: str = "float32"   # the dtype the ridge point is quoted for (most common matmul dtype)
    # caveats the reader must see (e.g. shapes priced as exported because dynamic export failed)
    notes: list[str] = field(default_factory=list)
    # requested seq/batch/past values that bind no dim of the graph (priced at the graph's own shapes instead)
    unused_dims: dict[str, int] = field(default_factory=dict)
    # whose grouping decision made the rows: "" (one row per IR op) or e.g. "kernels of target cpu"
    grouping: str = ""
    cuda_graphs: bool = False   # launch overheads priced as CUDA-graph replays (GPU specs with launch_graph_s)

    def __post_init__(self):
        total = self.total_time_s
        for r in self.rows:
            r.share = r.cost.time_s / total if total else 0.0

    # ---- totals -------------------------------------------------------------------
    @property
    def total_time_s(self) -> float:
        return sum(r.cost.time_s for r in self.rows)

    @property
    def kernel_count(self) -> int:
        """Kernel launches priced: one per row in kernel mode; rows with a launch in per-op mode."""
        return len(self.rows) if self.grouping else sum(1 for r in self.rows if r.cost.launch_s > 0)

    @property
    def total_energy_j(self) -> float | None:
        """Sum of the rows' energy when the device has an energy model, else None."""
        if not any(r.cost.energy_j is not None for r in self.rows):
            return None
        return sum(r.cost.energy_j or 0.0 for r in self.rows)

    @property
    def total_flops(self) -> float:
        return sum(r.cost.flops + r.cost.vector_flops for r in self.rows)

    @property
    def total_matrix_flops(self) -> float:
        return sum(r.cost.flops for r in self.rows)

    @property
    def total_bytes(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rows:
            for k, v in r.cost.bytes.items():
                out[k] = out.get(k, 0.0) + v
        return out

    @property
    def main_bytes(self) -> float:
        return self.total_bytes.get(self.hardware.main_memory.name, 0.0)

    @property
    def kv_cache_bytes(self) -> float:
        return sum(r.cost.kv_cache_bytes for r in self.rows)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV cache per token summed over the attention layers."""
        return sum(r.cost.kv_bytes_per_token for r in self.rows)

    def totals(self) -> dict[str, Any]:
        return {"time_s": self.total_time_s, "energy_j": self.total_energy_j, "flops": self.total_flops, "matrix_flops": self.total_matrix_flops,
                "bytes": self.total_bytes, "main_bytes": self.main_bytes,
                "intensity": self.total_matrix_flops / self.main_bytes if self.main_bytes else None,
                "kv_cache_bytes": self.kv_cache_bytes, "kv_bytes_per_token": self.kv_bytes_per_token,
                "weights_bytes": self.weights_bytes, "peak_memory_bytes": self.peak_memory_bytes}

    # ---- forms --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph_name, "hardware": self.hardware.name, "hardware_source": self.hardware.provenance,
                "grouping": self.grouping, "kernel_count": self.kernel_count, "cuda_graphs": self.cuda_graphs,
                "phase": self.phase, "dtype": self.dtype, "dims": self.dims, "unused_dims": dict(self.unused_dims),
                "notes": list(self.notes),
                "rows": [r.to_dict() for r in self.rows], "totals": self.totals()}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_jsonable)

    def table_lines(self) -> list[str]:
        hw = self.hardware
        head = ["op", "kind", "variant", "FLOPs", f"{hw.main_memory.name} B", "FLOP/B", "bound", "time", "share"]
        body = [[r.name, r.kind, r.variant or "-", human(r.cost.flops + r.cost.vector_flops),
                 human(r.cost.main_bytes), f"{r.cost.intensity:.3g}" if r.cost.main_bytes else "-",
                 r.cost.bound, human_time(r.cost.time_s), f"{100 * r.share:.1f}%"] for r in self.rows]
        if self.total_energy_j is not None:  # only devices with an energy model get the column
            head.append("energy")
            for b, r in zip(body, self.rows):
                b.append(human_energy(r.cost.energy_j) if r.cost.energy_j is not None else "-")
        if any(r.ops for r in self.rows):  # kernel rows: the IR ops each kernel computes
            head.append("IR ops")
            for b, r in zip(body, self.rows):
                ops = ",".join(r.ops)
                b.append(ops if len(ops) <= 48 else ops[:45] + "...")
        if any(r.lowering for r in self.rows):  # nodes the compiled model did not run as generated kernels
            head.append("ran as")
            for b, r in zip(body, self.rows):
                b.append(r.lowering or "kernel")
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else [len(h) for h in head]
        left = {0, 1, 2, 6} | {i for i, h in enumerate(head) if h in ("ran as", "IR ops")}
        fmt = lambda cells: "  ".join(c.ljust(w) if i in left else c.rjust(w)  # noqa: E731
                                      for i, (c, w) in enumerate(zip(cells, widths)))
        return [fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body]

    def explain(self, row: Row) -> str:
        """Why an op costs what it costs, in one paragraph."""
        c, hw = row.cost, self.hardware
        dtype_ridge = c.details.get("ridge_point")
        parts = [f"{row.name} ({row.kind}{', ' + row.variant if row.variant else ''}): {human_time(c.time_s)}, "
                 f"{100 * row.share:.1f}% of the total, {c.bound}-bound."]
        opt = c.details.get("optical")
        if opt and not opt["frames"] and not opt["filter_updates"]:
            parts.append(f"Runs on the electronic host: {human(opt['host_flops'])} FLOPs, {human(opt['host_bytes'], 'B')}; "
                         f"energy {human_energy(c.energy_j)}.")
        elif opt:  # the 4f model, not the roofline, priced this op
            parts.append(f"4f model: {opt['frames']} frames at {human_time(opt['frame_period_s'])}, "
                         f"{opt['filter_updates']} filter updates ({opt['dynamic_filter_updates']} data-dependent) at "
                         f"{human_time(opt['update_s'])} each on the {opt['filter']} filter, host "
                         f"{human_time(opt['time_parts_s']['host'])}; energy {human_energy(c.energy_j)}.")
        elif c.main_bytes and dtype_ridge:
            side = "below" if c.intensity < dtype_ridge else "above"
            parts.append(f"Intensity {c.intensity:.3g} FLOP/B is {side} the ridge point {dtype_ridge:.3g} FLOP/B of "
                         f"{hw.name}; compute {human_time(c.compute_s)} vs memory {human_time(c.memory_s)}"
                         f" (+ launch {human_time(c.launch_s)}).")
        if c.kv_read_bytes and c.main_bytes:  # main_bytes is 0 when the whole graph stays in the L3
            parts.append(f"K/V reads {human(c.kv_read_bytes, 'B')} ({100 * c.kv_read_bytes / c.main_bytes:.0f}% of its "
                         f"{hw.main_memory.name} bytes); KV cache {human(c.kv_bytes_per_token, 'B')}/token; "
                         f"tiles {c.details.get('tiling')}.")
        if row.lowering:
            parts.append(f"The compiled model runs it as {row.lowering}, not the tuned kernel priced here.")
        parts.extend(c.notes)
        return " ".join(parts)

    def to_text(self, top: int = 3) -> str:
        """Aligned table, summary, and explanations of the `top` most expensive ops."""
        hw = self.hardware
        t = self.totals()
        dims = ", ".join(f"{k}={v}" for k, v in self.dims.items()) or "static shapes"
        lines = [f"cost report: {self.graph_name}; hardware: {hw.name} ({hw.provenance}; {hw.description}); "
                 f"phase {self.phase}; {dims}"]
        lines += [f"note: {n}" for n in self.notes]
        if self.grouping:
            launch = ("CUDA-graph replays" if self.cuda_graphs else "eager launches") if self.hardware.kind == "gpu" \
                else "a measured fixed cost per kernel call"
            lines.append(f"{self.kernel_count} kernels ({self.grouping}; launch overhead priced as {launch})")
        lines.append("")
        lines += self.table_lines()
        lines += ["", f"total time     {human_time(t['time_s'])}"]
        if t["energy_j"] is not None:
            lines.append(f"total energy   {human_energy(t['energy_j'])} (simulation estimate)")
        lines += [
                  f"total FLOPs    {human(t['flops'])} ({human(t['matrix_flops'])} matrix)",
                  f"{hw.main_memory.name} traffic  " + human(t["main_bytes"], "B") +
                  (f"  (intensity {t['intensity']:.3g} FLOP/B, ridge {hw.ridge_point(self.dtype):.3g} {self.dtype})" if t["intensity"] else ""),
                  f"peak memory    {human(t['peak_memory_bytes'], 'B')} (weights {human(t['weights_bytes'], 'B')})",
                  f"KV cache       {human(t['kv_cache_bytes'], 'B')} ({human(t['kv_bytes_per_token'], 'B')} per token, all layers)"]
        bounds: dict[str, float] = {}
        for r in self.rows:
            bounds[r.cost.bound] = bounds.get(r.cost.bound, 0.0) + r.share
        lines.append("time by bound  " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(bounds.items(), key=lambda x: -x[1])))
        ranked = sorted(self.rows, key=lambda r: -r.cost.time_s)[:top]
        if ranked:
            lines += ["", "why the top ops cost what they cost:"] + [f"- {self.explain(r)}" for r in ranked]
        return "\n".join(lines)

    def to_html(self, path: str) -> str:
        """Write an HTML report with the embedded roofline plot; returns the path."""
        from .html_report import write_html

        return write_html(self, path)

    def __str__(self) -> str:
        return self.to_text()


def _jsonable(x):
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, (set, tuple)):
        return list(x)
    return str(x)
