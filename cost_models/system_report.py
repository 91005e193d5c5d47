"""SystemReport: one decode/prefill step of a model split over a system's devices, per rank.

Built from rank 0's graph of `shard_graph` (all tp/ep ranks of a stage are symmetric: experts are assumed
load-balanced) priced op by op on the system's device, plus its collective ops priced by `collective_time`
on the system's links. Pipeline parallelism is accounted per layer: each of pp stages runs layers/pp of the
repeated layers (the embedding and head on the first/last stage) and sends its activations to the next.

Stated assumptions (also in every report's `assumptions`):
- overlap: "none" (default) adds collective time to compute; "full" takes the larger of the two.
- pp: pp micro-batches of `batch` sequences are in flight (one per stage); a token's latency is the sum of
  the stage times plus the sends; throughput is pp x batch tokens per token latency.
- dp: replicas serve other requests independently (devices x dp, tokens/s x dp, nothing shared).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .collectives import CollectiveCost, collective_time
from .pricing import OpCost, price
from .report import CostReport, human, human_time
from .systems import System

COLLECTIVE_KINDS = ("AllReduce", "AllGather", "ReduceScatter", "AllToAll", "Send", "Recv")


@dataclass(frozen=True)
class Parallel:
    """Parallel sizes: tensor, expert, pipeline, data."""

    tp: int = 1
    ep: int = 1
    pp: int = 1
    dp: int = 1

    @property
    def devices(self) -> int:
        return self.tp * self.ep * self.pp * self.dp

    @staticmethod
    def of(value: "Parallel | dict | None") -> "Parallel":
        if isinstance(value, Parallel):
            return value
        value = dict(value or {})
        unknown = set(value) - {"tp", "ep", "pp", "dp"}
        if unknown:
            raise ValueError(f"parallel: unknown key(s) {sorted(unknown)}; supported: tp, ep, pp, dp")
        for k, v in value.items():
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"parallel: {k} must be an integer >= 1, got {v!r}")
        return Parallel(**value)


@dataclass
class SystemReport:
    """Per-rank, per-step pricing of a model on a system (see the module docstring)."""

    system: System
    parallel: Parallel
    phase: str
    batch: int
    kv_len: int
    rank_report: CostReport                  # rank 0 of stage 0, all repeated layers (pp not yet applied)
    collectives: list[CollectiveCost]
    layer_fraction: float                    # share of rank_report's op time in repeated layers
    kv_bytes_per_token: float                # whole model, all layers, unsharded
    kv_bytes_per_device: float
    weight_bytes_per_device: float
    activation_bytes_per_device: float
    overlap: str = "none"
    options: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # ---- time ---------------------------------------------------------------------------
    def _stage(self, x: float) -> float:
        """A quantity of rank_report for one pipeline stage: layers/pp of the repeated part, the rest once."""
        pp = self.parallel.pp
        return x * (self.layer_fraction / pp + (1.0 - self.layer_fraction))

    @property
    def compute_time_s(self) -> float:
        return self._stage(sum(r.cost.compute_s for r in self.rank_report.rows))

    @property
    def memory_time_s(self) -> float:
        return self._stage(sum(r.cost.memory_s for r in self.rank_report.rows))

    @property
    def op_time_s(self) -> float:
        """Sum over ops of max(compute, memory) + launch (the roofline per op), one stage."""
        return self._stage(sum(r.cost.time_s for r in self.rank_report.rows))

    @property
    def collective_time_s(self) -> float:
        """Collectives of one stage: layers/pp of the per-layer ones, the others once (pipeline sends apart)."""
        layer = sum(c.total_s for c in self.collectives if c.where == "layer")
        other = sum(c.total_s for c in self.collectives if c.where not in ("layer", "pipeline"))
        return layer / self.parallel.pp + other

    @property
    def send_time_s(self) -> float:
        return sum(c.total_s for c in self.collectives if c.where == "pipeline")

    @property
    def stage_time_s(self) -> float:
        comm = self.collective_time_s
        return self.op_time_s + comm if self.overlap == "none" else max(self.op_time_s, comm)

    @property
    def step_time_s(self) -> float:
        """Latency of one step (one new token per sequence in decode): every stage plus the sends between them."""
        return self.parallel.pp * self.stage_time_s + self.send_time_s

    @property
    def tokens_per_step(self) -> int:
        return self.batch * (1 if self.phase == "decode" else self.kv_len)

    @property
    def tokens_per_s(self) -> float:
        """Whole system: every dp replica, pp micro-batches in flight."""
        return self.parallel.dp * self.parallel.pp * self.tokens_per_step / self.step_time_s

    @property
    def tokens_per_s_per_device(self) -> float:
        return self.tokens_per_s / self.parallel.devices

    @property
    def tokens_per_s_per_user(self) -> float:
        return (1.0 if self.phase == "decode" else self.kv_len) / self.step_time_s

    @property
    def bound(self) -> str:
        parts = {"compute": sum(r.cost.time_s for r in self.rank_report.rows if r.cost.bound == "compute"),
                 "memory": sum(r.cost.time_s for r in self.rank_report.rows if r.cost.bound.startswith("memory")),
                 "latency": sum(r.cost.time_s for r in self.rank_report.rows if r.cost.bound == "latency")}
        parts = {k: self._stage(v) for k, v in parts.items()}
        parts["collective"] = self.collective_time_s
        return max(parts, key=parts.get)

    # ---- memory --------------------------------------------------------------------------
    @property
    def capacity_bytes(self) -> int:
        return self.system.device.main_memory.capacity_bytes

    @property
    def used_bytes_per_device(self) -> float:
        return self.weight_bytes_per_device + self.kv_bytes_per_device + self.activation_bytes_per_device

    @property
    def fits(self) -> bool:
        return self.used_bytes_per_device <= self.capacity_bytes

    # ---- forms ---------------------------------------------------------------------------
    def assumptions(self) -> list[str]:
        return [f"compute/communication overlap: {self.overlap} ("
                + ("collective time added to op time" if self.overlap == "none" else "the larger of op and collective time")
                + ")",
                "tp/ep ranks symmetric (experts load-balanced); rank 0 priced; GPU decode launches as CUDA-graph replays",
                f"pp={self.parallel.pp}: {self.parallel.pp} micro-batches of {self.batch} in flight; latency = stages + sends",
                f"dp={self.parallel.dp}: independent replicas"]

    def totals(self) -> dict[str, Any]:
        return {"step_time_s": self.step_time_s, "stage_time_s": self.stage_time_s, "compute_time_s": self.compute_time_s,
                "memory_time_s": self.memory_time_s, "op_time_s": self.op_time_s,
                "collective_time_s": self.collective_time_s, "send_time_s": self.send_time_s, "bound": self.bound,
                "tokens_per_s": self.tokens_per_s, "tokens_per_s_per_device": self.tokens_per_s_per_device,
                "tokens_per_s_per_user": self.tokens_per_s_per_user,
                "weight_bytes_per_device": self.weight_bytes_per_device, "kv_bytes_per_token": self.kv_bytes_per_token,
                "kv_bytes_per_device": self.kv_bytes_per_device,
                "activation_bytes_per_device": self.activation_bytes_per_device,
                "capacity_bytes_per_device": self.capacity_bytes, "fits": self.fits}

    def to_dict(self) -> dict[str, Any]:
        t = self.totals()
        return {**t, "totals": t, "system": self.system.to_dict(), "device": self.system.device.name,
                "parallel": dataclasses.asdict(self.parallel), "devices": self.parallel.devices, "phase": self.phase,
                "batch": self.batch, "kv_len": self.kv_len, "overlap": self.overlap, "options": dict(self.options),
                "assumptions": self.assumptions(), "notes": list(self.notes),
                "collectives": [c.to_dict() for c in self.collectives],
                "rank_rows": [r.to_dict() for r in self.rank_report.rows]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    def to_text(self) -> str:
        p, t = self.parallel, self.totals()
        s = self.system
        lines = [f"system report: {self.rank_report.graph_name} on {s.name} ({s.device.name} x{p.devices}: "
                 f"tp={p.tp} ep={p.ep} pp={p.pp} dp={p.dp}); {self.phase}, batch {self.batch}, "
                 f"{'KV length' if self.phase == 'decode' else 'sequence'} {self.kv_len}"
                 + (f"; {', '.join(f'{k}={v}' for k, v in self.options.items())}" if self.options else "")]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"assumption: {a}" for a in self.assumptions()]
        lines += ["", "per rank, per step (one pipeline stage):",
                  f"  compute        {human_time(t['compute_time_s'])}",
                  f"  memory         {human_time(t['memory_time_s'])}",
                  f"  ops (roofline) {human_time(t['op_time_s'])}",
                  f"  collectives    {human_time(t['collective_time_s'])}" + (f"  (+ pipeline sends {human_time(t['send_time_s'])})" if p.pp > 1 else ""),
                  f"  bound by       {t['bound']}",
                  f"step time      {human_time(t['step_time_s'])}",
                  f"tokens/s       {t['tokens_per_s']:.4g} total, {t['tokens_per_s_per_device']:.4g} per device, "
                  f"{t['tokens_per_s_per_user']:.4g} per user",
                  "", "memory per device:",
                  f"  weights        {human(t['weight_bytes_per_device'], 'B')}",
                  f"  KV cache       {human(t['kv_bytes_per_device'], 'B')} ({human(self.kv_bytes_per_token, 'B')} per token, whole model)",
                  f"  activations    {human(t['activation_bytes_per_device'], 'B')}",
                  f"  total          {human(self.used_bytes_per_device, 'B')} of {human(self.capacity_bytes, 'B')}: "
                  + ("fits" if self.fits else "DOES NOT FIT"), "", "collectives per step (rank 0):"]
        if not self.collectives:
            lines.append("  none")
        for c in self.collectives:
            lines.append(f"  {c.op:<14} {human(c.bytes, 'B'):>8} over {c.ranks:>3} ranks on {c.link:<12} "
                         f"{human_time(c.time_s):>9} x{c.count} ({c.where})")
        return "\n".join(lines)

    def to_html(self, path: str) -> str:
        from .system_html import write_system_html

        return write_system_html(self, path)

    def __str__(self) -> str:
        return self.to_text()


def _layer_of(node, layer_of: dict, producers: dict) -> str:
    """The repeated layer a node belongs to: its own record, else the nearest recorded producer upstream."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop(0)
        if n.name in layer_of:
            return layer_of[n.name]
        for v in n.inputs:
            if v is not None and v.producer is not None and id(v.producer) not in seen and len(seen) < 64:
                seen.add(id(v.producer))
                stack.append(v.producer)
    return ""


def _feeds_experts(node, users: dict, limit: int = 64) -> bool:
    """A dispatch: the all-to-all's result reaches an expert matmul (3-D constant weight) before another all-to-all."""
    from .moe_cost import _const_weight

    seen, stack = set(), [node]
    while stack and len(seen) < limit:
        n = stack.pop()
        for out in n.outputs:
            for u, _ in users.get(id(out), []):
                if id(u) in seen:
                    continue
                seen.add(id(u))
                if u.op.op_name == "MatMul" and len(u.inputs) == 2 and _const_weight(u.inputs[1]) \
                        and len(u.inputs[1].shape) == 3:
                    return True
                if u.op.op_name not in COLLECTIVE_KINDS:
                    stack.append(u)
    return False


def graph_collectives(graph, bind, system: System, dispatch_bytes_scale: float = 1.0) -> list[CollectiveCost]:
    """Every collective op of a rank graph priced on `system`; count = the repeated layers it stands for.
    MoE dispatch all-to-alls of floating data are scaled by `dispatch_bytes_scale` (FP8 dispatch: 0.5)."""
    from attncc.ir.ops.collectives import message_bytes

    counts = graph.metadata.get("layer_counts") or {}
    layer_of = graph.metadata.get("layer_of_node") or {}
    users = graph.users()
    out = []
    for n in graph.topological():
        if n.op.op_name not in COLLECTIVE_KINDS:
            continue
        nbytes = float(bind.dim(message_bytes(n), n.name))
        data = (n.outputs[0] if n.op.op_name in ("AllGather", "Recv") else n.inputs[0]).dtype
        dispatch = n.op.op_name == "AllToAll" and _feeds_experts(n, users)
        if dispatch and data.startswith(("float", "bfloat")):
            nbytes *= dispatch_bytes_scale
        path = _layer_of(n, layer_of, {})
        c = collective_time(n.op.op_name, nbytes, n.op.ranks, system)
        c.count = next((k for p, k in counts.items() if path and (path == p or path.endswith("." + p))), 1)
        c.where = "layer" if path else "model"
        out.append(c)
    return out


def collective_cost_rule(node, bind, hw, ctx) -> OpCost:
    """A collective's row in a per-device report: no device time (the system prices it), its size recorded."""
    from attncc.ir.ops.collectives import message_bytes

    cost = OpCost(main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = 0.0
    dtype = (node.outputs[0] if node.op.op_name in ("AllGather", "Recv") else node.inputs[0]).dtype
    cost.details["collective"] = {"op": node.op.op_name, "bytes": bind.dim(message_bytes(node), node.name),
                                  "ranks": node.op.ranks, "group": node.op.group,
                                  "float": dtype.startswith(("float", "bfloat"))}
    return price(cost, hw, "float32", "collective", launches=0)
