"""Scale the rows of a graph exported with one layer per distinct structure back to the whole model.

The torch frontend records, per IR node, the repeated module it ran in (`graph.metadata["layer_of_node"]`,
"" outside any); nodes added later by passes (a lifted Attention) belong to the layer of the node before
them in topological order. `graph.metadata["layer_counts"]` maps each exported layer to the number of real
layers it stands for; each of its rows is priced once and multiplied by that count.
"""
from __future__ import annotations

import dataclasses

from .pricing import OpCost
from .report import CostReport, Row

# additive OpCost fields (per call) that a count multiplies; ratios (intensity) follow
_SCALED = ("flops", "vector_flops", "kv_cache_bytes", "kv_bytes_per_token", "kv_read_bytes", "compute_s",
           "memory_s", "launch_s", "time_s")


def row_layers(rows: list[Row], layer_of_node: dict[str, str]) -> list[str]:
    """The layer path of each row ("" outside any layer), inheriting from the previous row when unrecorded."""
    current, out = "", []
    for r in rows:
        names = [r.name] + list(getattr(r, "ops", None) or [])   # a kernel row lists the IR ops it computes
        current = next((layer_of_node[n] for n in names if n in layer_of_node), current)
        out.append(current)
    return out


def scaled_cost(cost: OpCost, count: int) -> OpCost:
    """`cost` of `count` identical ops run one after another."""
    c = dataclasses.replace(cost, bytes={k: v * count for k, v in cost.bytes.items()}, details=dict(cost.details),
                            notes=list(cost.notes))
    for f in _SCALED:
        setattr(c, f, getattr(cost, f) * count)
    for f in ("executed_flops", "executed_vector_flops", "energy_j"):
        if getattr(cost, f) is not None:
            setattr(c, f, getattr(cost, f) * count)
    if "weight_bytes" in c.details:
        c.details["weight_bytes"] = c.details["weight_bytes"] * count
    c.details["repeat"] = count
    return c


def layer_counts_of_rows(rows: list[Row], metadata: dict) -> list[int]:
    """How many real layers each row stands for (1 outside the repeated stack or without layer counts)."""
    counts = metadata.get("layer_counts") or {}
    if not counts:
        return [1] * len(rows)
    layers = row_layers(rows, metadata.get("layer_of_node") or {})
    out = []
    for path in layers:
        match = [c for p, c in counts.items() if path == p or path.endswith("." + p)]
        out.append(match[0] if match else 1)
    return out


def scale_repeated_layers(report: CostReport, metadata: dict, weights_bytes: int | None = None) -> CostReport:
    """A report whose rows of each exported layer are multiplied by the real layers it stands for.

    weights_bytes: the whole model's parameter bytes (the exported graph holds only the kept layers')."""
    counts = layer_counts_of_rows(report.rows, metadata)
    if all(c == 1 for c in counts) and weights_bytes is None:
        return report
    rows = [Row(f"{r.name} x{c}" if c > 1 else r.name, r.kind, r.variant, scaled_cost(r.cost, c) if c > 1 else r.cost,
                lowering=r.lowering, ops=r.ops, kernel_class=r.kernel_class) for r, c in zip(report.rows, counts)]
    weights = report.weights_bytes if weights_bytes is None else int(weights_bytes)
    peak = report.peak_memory_bytes - report.weights_bytes + weights
    total_layers = sum((metadata.get("layer_counts") or {}).values())
    notes = list(report.notes)
    if total_layers:
        notes.append(f"repeated layers priced once: {len(metadata['layer_counts'])} distinct layer structure(s) "
                     f"exported, scaled to {total_layers} layers (rows marked xN)")
    return dataclasses.replace(report, rows=rows, weights_bytes=weights, peak_memory_bytes=peak, notes=notes)
