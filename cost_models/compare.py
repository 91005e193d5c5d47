"""Side-by-side comparison of several variants or devices (e.g. MHA vs GQA vs MLA decode on H100)."""
from __future__ import annotations

from typing import Any, Iterable

from .report import CostReport, human, human_energy, human_time


def _as_report(item: Any) -> tuple[str, CostReport]:
    """A (label, report) from a CostReport, (graph, hardware), (graph, hardware, options) or (label, ...)."""
    from .analyze import analyze_graph

    if isinstance(item, CostReport):
        return item.graph_name, item
    if isinstance(item, tuple):
        label = None
        if item and isinstance(item[0], str):
            label, item = item[0], item[1:]
        if len(item) == 1 and isinstance(item[0], CostReport):
            return label or item[0].graph_name, item[0]
        if len(item) in (2, 3):
            graph, hw = item[0], item[1]
            opts = item[2] if len(item) == 3 else {}
            rep = analyze_graph(graph, hardware=hw, **opts)
            return label or f"{graph.name}@{rep.hardware.name}", rep
    raise TypeError(f"compare() takes CostReports or (graph, hardware[, options]) tuples (optionally led by a label), got {item!r}")


def compare(items: Iterable[Any]) -> str:
    """Text table: one column per report (time, FLOPs, bytes, intensity, KV cache, dominant bound, speedup)."""
    reps = [_as_report(x) for x in items]
    if not reps:
        raise ValueError("compare() needs at least one report")
    base = reps[0][1].total_time_s
    def dominant(r: CostReport) -> str:
        shares: dict[str, float] = {}
        for row in r.rows:
            shares[row.cost.bound] = shares.get(row.cost.bound, 0.0) + row.share
        return max(shares, key=shares.get) if shares else "-"
    metrics = [
        ("hardware", lambda r: r.hardware.name),
        # the spec figures behind each column (devices side by side: mobile-cpu, mobile-gpu, host-cpu)
        ("peak FLOP/s", lambda r: f"{human(r.hardware.peak_flops(r.dtype))} {r.dtype}"),
        ("main-memory B/s", lambda r: human(r.hardware.main_memory.bandwidth_bytes_per_s, "B/s")),
        ("phase", lambda r: r.phase),
        ("variants", lambda r: ",".join(sorted({x.variant for x in r.rows if x.variant})) or "-"),
        ("time", lambda r: human_time(r.total_time_s)),
        ("speedup vs first", lambda r: f"{base / r.total_time_s:.2f}x" if r.total_time_s else "-"),
        ("FLOPs", lambda r: human(r.total_flops)),
        ("main-memory bytes", lambda r: human(r.main_bytes, "B")),
        ("intensity FLOP/B", lambda r: f"{r.total_matrix_flops / r.main_bytes:.3g}" if r.main_bytes else "-"),
        ("KV cache", lambda r: human(r.kv_cache_bytes, "B")),
        ("KV per token", lambda r: human(r.kv_bytes_per_token, "B")),
        ("peak memory", lambda r: human(r.peak_memory_bytes, "B")),
        ("dominant bound", dominant),
    ]
    if any(r.total_energy_j is not None for _, r in reps):  # devices with an energy model (optical-4f, simulated)
        metrics.insert(5, ("energy (simulated)", lambda r: human_energy(r.total_energy_j) if r.total_energy_j is not None else "-"))
    table = [[""] + [label for label, _ in reps]] + [[name] + [fn(r) for _, r in reps] for name, fn in metrics]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
