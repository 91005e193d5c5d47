"""Planner: search (tp, ep, pp, dp, batch) on 1..N nodes of a system for the best tokens/s per device that meets
a per-token latency SLO (decode TPOT) and fits in memory.

Searching hundreds of configurations cannot re-shard and re-price the graph for each, so the planner scales
one single-device pricing (`ModelProfile`, the rows of the model priced once at a reference batch, repeated
layers scaled, expert matmuls as grouped GEMMs) per rank with the rules the shard pass applies:
- tp: attention heads and dense projections over tp (an MLA latent cache is replicated, GQA KV heads
  replicated when fewer than tp); 2 all-reduces of the residual stream per layer.
- ep: experts over ep ranks; with tp = 1 attention is data-parallel over the ep ranks (DeepSeek); per MoE
  layer one dispatch (FP8 or BF16) and one combine (BF16) all-to-all of tokens x experts per token x hidden.
- pp: layers over stages, a send of the residual stream between stages; dp: independent replicas.
Each scaled row is priced on the device roofline (`price`), collectives by `collective_time`.
`attncc.analyze(system=, parallel=)` prices the real rank graphs; tests check the two agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .collectives import collective_time
from .moe_cost import experts_touched
from .pricing import OpCost, price
from .report import CostReport
from .systems import System, get_system


@dataclass
class ProfileRow:
    kind: str             # attention | expert | weight | other
    flops: float          # at the reference batch
    act_bytes: float      # bytes that scale with the batch (activations, K/V reads)
    weight_bytes: float   # bytes read once per step whatever the batch (dense weights)
    launch_s: float
    op_kind: str          # kernel class for efficiency lookups
    dtype: str
    experts: int = 0      # expert rows: experts, routed rows at the reference batch, bytes per expert
    routed_rows: float = 0.0
    expert_bytes: float = 0.0
    in_layer: bool = True


@dataclass
class ModelProfile:
    """What the planner needs of a model, read from one single-device pricing at `batch` sequences."""

    rows: list[ProfileRow]
    batch: int
    kv_len: int
    phase: str
    hidden: int
    layers: int
    moe_layers: int
    experts: int
    experts_per_token: float
    kv_bytes_per_token: float
    dense_weight_bytes: float
    expert_weight_bytes: float
    latent_kv: bool            # MLA: the latent cache does not split over tp
    kv_heads: int
    act_bytes: int = 2

    @staticmethod
    def from_report(report: CostReport, graph, batch: int, kv_len: int, phase: str, whole_weight_bytes: float) -> "ModelProfile":
        from .moe_cost import grouped_expert_matmuls
        from .repeated import layer_counts_of_rows, row_layers

        counts = layer_counts_of_rows(report.rows, graph.metadata)
        paths = row_layers(report.rows, graph.metadata.get("layer_of_node") or {})
        rows, expert_w, experts, routed, moe_mm = [], 0.0, 0, 0.0, 0
        kv_per_token = sum(r.cost.kv_bytes_per_token * c for r, c in zip(report.rows, counts))
        for r, c, path in zip(report.rows, counts, paths):
            cost = r.cost
            kind = cost.details.get("efficiency", {}).get("kernel_class", "elementwise")
            dtype = "bfloat16"
            if cost.details.get("grouped_experts"):
                e, rows_ = cost.details["grouped_experts"], cost.details["routed_rows"]
                per = cost.details["weight_bytes"] / max(cost.details["experts_touched"], 1e-9)
                rows.append(ProfileRow("expert", cost.flops * c, (cost.main_bytes - cost.details["weight_bytes"]) * c,
                                       0.0, cost.launch_s * c, kind, dtype, e, rows_, per * c, bool(path)))
                expert_w += per * e * c
                experts, routed, moe_mm = e, rows_, moe_mm + c
                continue
            w = cost.details.get("weight_bytes", 0.0) if r.kind in ("Linear", "MatMul") else 0.0
            k = "attention" if r.kind in ("Attention", "FusedAttention") else "weight" if w else "other"
            rows.append(ProfileRow(k, (cost.flops + cost.vector_flops) * c, (cost.main_bytes - w) * c, w * c,
                                   cost.launch_s * c, kind, dtype, in_layer=bool(path)))
        attn = [n for n in graph.attention_ops()]
        latent = any(n.spec.variant == "mla" for n in attn)
        kv_heads = attn[0].spec.num_kv_heads if attn else 1
        hidden = _hidden(graph)
        layers = sum((graph.metadata.get("layer_counts") or {}).values()) or 1
        tokens = batch * (1 if phase == "decode" else kv_len)
        dense = max(0.0, whole_weight_bytes - expert_w)
        return ModelProfile(rows, batch, kv_len, phase, hidden, layers, moe_mm // 2 if moe_mm else 0, experts,
                            routed / tokens if tokens else 0.0, kv_per_token, dense, expert_w, latent,
                            kv_heads, _residual_bytes(graph))


def _hidden(graph) -> int:
    for n in graph.topological():
        if n.op.op_name == "Gather" and n.inputs and n.inputs[0].producer is not None \
                and n.inputs[0].producer.op.op_name == "Constant":
            d = n.outputs[0].shape[-1]
            return int(d) if isinstance(d, int) else 0
    return 0


def _residual_bytes(graph) -> int:
    """Bytes per element of the residual stream (the embedding's output dtype)."""
    from attncc.ir.types import DTYPE_BYTES

    for n in graph.topological():
        if n.op.op_name == "Gather" and n.inputs and n.inputs[0].producer is not None \
                and n.inputs[0].producer.op.op_name == "Constant":
            return DTYPE_BYTES[n.outputs[0].dtype]
    return 2


def ep_exchange_time(tokens: float, experts_per_token: float, hidden: int, ranks: int, system: str | System,
                     dispatch_bytes: int = 1, combine_bytes: int = 2) -> tuple[float, float]:
    """(dispatch, combine) seconds of one expert-parallel exchange: each rank sends its tokens to the ranks of
    their experts (dispatch) and gets the results back (combine), priced as all-to-alls over `ranks`."""
    size = tokens * experts_per_token * hidden
    return (collective_time("all_to_all", size * dispatch_bytes, ranks, system).time_s,
            collective_time("all_to_all", size * combine_bytes, ranks, system).time_s)


@dataclass
class Plan:
    """One configuration the planner priced."""

    tp: int
    ep: int
    pp: int
    dp: int
    batch: int
    nodes: int
    step_time_s: float = 0.0
    compute_s: float = 0.0
    collective_s: float = 0.0
    memory_bytes: float = 0.0
    capacity_bytes: float = 0.0
    tokens_per_s_per_device: float = 0.0
    rejected: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def devices(self) -> int:
        return self.tp * self.ep * self.pp * self.dp


def estimate(profile: ModelProfile, system: str | System, tp: int, ep: int, pp: int, dp: int, batch: int,
             overlap: str = "none", shared_experts_routed: int = 0, dispatch_bytes: int = 2, weight_bytes: int = 2,
             kv_bytes: int = 2) -> Plan:
    """Price one configuration per rank (see the module docstring). `batch`: sequences per replica."""
    sysm = get_system(system)
    hw = sysm.device
    p = profile
    dp_attention = ep > 1 and tp == 1
    batch_rank = batch / ep if dp_attention else batch
    s = batch_rank / p.batch                      # activation scale vs the reference pricing
    ops = 0.0
    for r in p.rows:
        cost = OpCost(main_level=hw.main_memory.name)
        if r.kind == "expert":
            rows = r.routed_rows * (batch / p.batch) / max(ep, 1) if ep > 1 else r.routed_rows * s
            local = -(-r.experts // max(ep, 1))   # ceil: redundant experts fill an ep that does not divide them
            cost.flops = r.flops * rows / max(r.routed_rows, 1e-9)
            cost.bytes[cost.main_level] = r.act_bytes * rows / max(r.routed_rows, 1e-9) + \
                experts_touched(local, round(rows)) * r.expert_bytes * weight_bytes / 2
        elif r.kind == "attention":
            split = 1 if dp_attention else tp
            kv_split = 1 if (p.latent_kv or dp_attention) else min(tp, max(p.kv_heads, 1))
            cost.flops = r.flops * s / split
            cost.bytes[cost.main_level] = r.act_bytes * s / kv_split * kv_bytes / 2
        elif r.kind == "weight":
            cost.flops = r.flops * s / tp
            cost.bytes[cost.main_level] = r.act_bytes * s / tp + r.weight_bytes / tp * weight_bytes / 2
        else:
            cost.flops = r.flops * s
            cost.bytes[cost.main_level] = r.act_bytes * s
        dtype = "float8" if weight_bytes == 1 and r.kind in ("weight", "expert") and "float8" in \
            hw.compute_units[0].peak_flops else r.dtype
        price(cost, hw, dtype, r.op_kind)
        cost.time_s = max(cost.compute_s, cost.memory_s) + r.launch_s
        ops += cost.time_s * (1 / pp if r.in_layer else 1)
    tokens_rank = batch_rank * (1 if p.phase == "decode" else p.kv_len)
    comm = 0.0
    if tp > 1:
        comm += 2 * p.layers / pp * collective_time("all_reduce", tokens_rank * p.hidden * p.act_bytes, tp, sysm).time_s
    if ep > 1 and p.moe_layers:
        d, c = ep_exchange_time(tokens_rank, p.experts_per_token + shared_experts_routed, p.hidden, ep * tp, sysm,
                                dispatch_bytes, 2)
        comm += (d + c) * p.moe_layers / pp
    stage = ops + comm if overlap == "none" else max(ops, comm)
    send = collective_time("send_recv", tokens_rank * p.hidden * p.act_bytes, 2, sysm,
                           spans_nodes=tp * ep >= sysm.devices_per_node).time_s if pp > 1 else 0.0
    step = pp * stage + (pp - 1) * send
    kv_split = 1 if (p.latent_kv or dp_attention) else min(tp, max(p.kv_heads, 1))
    dense = p.dense_weight_bytes * weight_bytes / 2 / (1 if dp_attention else tp)
    per_expert = p.expert_weight_bytes / max(p.experts, 1)
    experts = per_expert * -(-max(p.experts, 1) // max(ep, 1)) * weight_bytes / 2 if p.experts else 0.0
    kv = p.kv_bytes_per_token * kv_bytes / 2 / kv_split * batch_rank * p.kv_len
    mem = (dense + experts) / pp + kv
    devices = tp * ep * pp * dp
    tokens = dp * pp * batch * (1 if p.phase == "decode" else p.kv_len)
    plan = Plan(tp, ep, pp, dp, batch, 0, step, ops * pp, comm * pp, mem, hw.main_memory.capacity_bytes,
                tokens / step / devices)
    plan.details = {"weights_per_device": (dense + experts) / pp, "kv_per_device": kv}
    return plan


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def search(profile: ModelProfile, system: str | System, nodes: range, tpot_slo_s: float | None = None,
           batches: tuple[int, ...] = (1, 4, 8, 16, 32, 64, 128, 256, 512), **options) -> tuple[list[Plan], list[Plan]]:
    """Every (tp, ep, pp, dp, batch) on each node count: (accepted sorted by tokens/s per device, rejected).
    `batches`: sequences per replica; with expert parallelism (attention data-parallel over the ep ranks),
    sequences per ep rank (the replica's batch is ep times that)."""
    sysm = get_system(system)
    per_node = sysm.devices_per_node
    accepted, rejected = [], []
    for n in nodes:
        devices = n * per_node
        for tp in [t for t in _divisors(per_node)]:
            for ep in ([1] + [e for e in _divisors(devices // tp) if 1 < e <= profile.experts]):
                for pp in [q for q in _divisors(devices // (tp * ep)) if profile.layers % q == 0]:
                    dp = devices // (tp * ep * pp)
                    if ep > 1 and tp > 1:
                        continue   # expert parallel with data-parallel attention (tp = 1), DeepSeek's layout
                    for b in batches:
                        plan = estimate(profile, sysm, tp, ep, pp, dp, b * ep, **options)
                        plan.nodes = n
                        if plan.memory_bytes > plan.capacity_bytes:
                            plan.rejected = f"memory: {plan.memory_bytes / 1e9:.1f} GB > {plan.capacity_bytes / 1e9:.1f} GB per device"
                        elif tpot_slo_s is not None and plan.step_time_s > tpot_slo_s:
                            plan.rejected = f"SLO: {plan.step_time_s * 1e3:.1f} ms > {tpot_slo_s * 1e3:.1f} ms per token"
                        (rejected if plan.rejected else accepted).append(plan)
    accepted.sort(key=lambda p: -p.tokens_per_s_per_device)
    return accepted, rejected
