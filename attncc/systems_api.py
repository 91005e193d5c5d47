"""`attncc.analyze(model, system=..., parallel=...)`: price one step of a model split over a system.

import (weight-free, repeated layers once) -> lifting passes -> `shard_graph(tp, ep)` -> rank 0's graph
through the rest of the hardware pipeline -> per-op pricing on the system's device (spelled grouped expert
matmuls priced as grouped GEMMs) -> collective ops priced on the system's links -> pp/dp accounting
(cost_models/system_report.py states the assumptions).
"""
from __future__ import annotations

from typing import Any

from . import pipelines
from .cost_models.analyze import Binder, analyze_graph, bind_dims
from .cost_models.collectives import collective_time
from .cost_models.moe_cost import reprice_grouped_experts
from .cost_models.pricing import price
from .cost_models.repeated import row_layers, scale_repeated_layers
from .cost_models.system_report import COLLECTIVE_KINDS, Parallel, SystemReport, \
    graph_collectives
from .cost_models.systems import get_system
from .ir import Graph
from .ir.errors import IRError
from .ir.passes import run_pipeline
from .ir.types import DTYPE_BYTES

# bytes per element of the low-precision formats a report may ask for (FP8 E4M3/E5M2, INT8)
LOW_PRECISION = {"bf16": 2, "bfloat16": 2, "fp16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "int8": 1}
FP8_RATE_KEYS = ("float8_e4m3", "float8_e5m2", "float8")


class SystemPricingError(ValueError):
    """A parallel configuration the model or system does not allow; the message says which and what is legal."""


def _split(pipeline: str) -> tuple[str, str]:
    """The hardware pipeline cut before fuse-qkv: shard runs on lifted graphs whose projections are not packed."""
    passes = pipelines.split_pipeline(pipeline)
    i = passes.index("fuse-qkv") if "fuse-qkv" in passes else len(passes)
    return ",".join(passes[:i]), ",".join(passes[i:])


def _layer_total(metadata: dict) -> int:
    return sum((metadata.get("layer_counts") or {}).values())


def _constant_bytes_by_layer(graph: Graph, bind: Binder, pp: int, weight_scale: float) -> float:
    """Weight bytes one device holds: each constant times the layers it stands for, repeated layers over pp."""
    counts = graph.metadata.get("layer_counts") or {}
    layer_of = graph.metadata.get("layer_of_node") or {}
    users = graph.users()
    total = 0.0
    for n in graph.nodes:
        if n.op.op_name != "Constant":
            continue
        v = n.outputs[0]
        if not v.dtype.startswith(("float", "bfloat")):
            continue   # index tables and masks, not weights
        readers = [u for u, _ in users.get(id(v), [])]
        path = next((layer_of[u.name] for u in readers if u.name in layer_of), layer_of.get(n.name, ""))
        count = next((c for p, c in counts.items() if path and (path == p or path.endswith("." + p))), 1)
        size = bind.nbytes(v, n.name)
        if v.dtype.startswith(("float", "bfloat")) and len(v.shape) >= 2:
            size *= weight_scale
        total += size * (count / pp if path else 1)
    return total


def _low_precision(rank, hw, weight_bytes: int, kv_bytes: int, notes: list[str]) -> None:
    """Reprice rows for FP8/INT8 weights (matmul operands read at 1 byte, FP8 tensor-core rate when the device has
    one) and INT8/FP8 KV caches (attention reads its K/V at 1 byte)."""
    fp8_rate = next((k for k in FP8_RATE_KEYS if any(k in u.peak_flops for u in hw.compute_units)), None)
    if weight_bytes < 2 and fp8_rate is None:
        notes.append(f"{hw.name} has no FP8 tensor cores: FP8 weights are read at 1 byte but multiplied at the 16-bit rate")
    for r in rank.rows:
        c = r.cost
        kind = c.details.get("efficiency", {}).get("kernel_class")
        if not kind:
            continue
        main = c.main_level
        changed = False
        dtype = r.cost.details.get("dtype", "bfloat16")
        if weight_bytes < 2 and c.details.get("weight_bytes") and r.kind in ("Linear", "MatMul"):
            c.bytes[main] -= c.details["weight_bytes"] * (1 - weight_bytes / 2)
            c.details["weight_bytes"] *= weight_bytes / 2
            dtype = fp8_rate or "bfloat16"
            changed = True
        if kv_bytes < 2 and c.kv_read_bytes:
            saved = c.kv_read_bytes * (1 - kv_bytes / 2)
            c.bytes[main] -= saved
            c.kv_read_bytes -= saved
            c.kv_bytes_per_token *= kv_bytes / 2
            c.kv_cache_bytes *= kv_bytes / 2
            changed = True
        if changed:
            price(c, hw, dtype, kind)


def import_for_system(model: Any, example_inputs: Any = None, phase: str = "decode", batch: int = 1,
                      seq: int | None = None, past: int | None = None, dynamic: bool = True) -> Graph:
    """Import `model` once for many system reports (the planner, comparisons): weight-free, repeated layers once,
    dynamic batch/seq when the model exports that way (dynamic=True), else at these sizes (batch x 1 tokens in
    decode, batch x seq in prefill). Pass the graph as `model` later."""
    from .api import _import_layers_once, import_model
    from .frontends.repeated_layers import parameter_bytes, representative_layers

    options = {k: v for k, v in (("phase", phase), ("batch", batch), ("seq", seq), ("past", past)) if v is not None}
    notes: list[str] = []
    if dynamic:
        graph, whole = _import_layers_once(model, example_inputs, options, notes)
    else:
        import torch

        args = example_inputs if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
        tokens = 1 if phase == "decode" else seq
        args = tuple(a[:1, :1].expand(batch, tokens or a.shape[1], *a.shape[2:]).contiguous()
                     if torch.is_tensor(a) and a.dim() >= 2 else a for a in args)
        with representative_layers(model) as groups:
            graph = import_model(model, args)
        if groups is not None:
            graph.metadata["layer_counts"] = groups.counts_by_path()
        graph.metadata["static_sizes"] = {"batch": batch, **({"seq": tokens} if tokens else {})}
        whole = parameter_bytes(model)
    graph.metadata["import_notes"] = notes
    if whole is not None:
        graph.metadata["whole_model_weight_bytes"] = whole
    return graph


def analyze_system(model: Any, example_inputs: Any = None, system: str = "dgx-h100", parallel: Any = None,
                   phase: str = "decode", batch: int = 1, seq: int | None = None, past: int | None = None,
                   overlap: str = "none", weight_dtype: str = "bf16", kv_dtype: str = "bf16",
                   dispatch_dtype: str = "bf16") -> SystemReport:
    """Price one step of `model` on `system` split by `parallel` ({"tp", "ep", "pp", "dp"}); see module docstring.

    batch: sequences per replica (per micro-batch with pp); seq: KV length in decode (or past=), prompt length
    in prefill. weight_dtype / kv_dtype / dispatch_dtype: "bf16" | "fp8" (E4M3/E5M2) | "int8" (kv only).
    With ep > 1 and tp == 1 attention runs data-parallel over the ep ranks (DeepSeek's deployment)."""
    from .api import _import_layers_once

    sysm = get_system(system)
    hw = sysm.device
    par = Parallel.of(parallel)
    if overlap not in ("none", "full"):
        raise SystemPricingError(f"overlap must be 'none' or 'full', got {overlap!r}")
    sizes = {}
    for what, v, allowed in (("weight_dtype", weight_dtype, ("bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2")),
                             ("kv_dtype", kv_dtype, ("bf16", "fp16", "fp8", "fp8_e4m3", "fp8_e5m2", "int8")),
                             ("dispatch_dtype", dispatch_dtype, ("bf16", "fp8", "fp8_e4m3", "fp8_e5m2"))):
        if v not in allowed:
            raise SystemPricingError(f"{what} {v!r} is not supported; supported: {', '.join(allowed)}")
        sizes[what] = LOW_PRECISION[v]
    dp_attention = par.ep > 1 and par.tp == 1
    if dp_attention and batch % par.ep:
        raise SystemPricingError(f"batch {batch} does not divide over ep={par.ep} ranks (attention runs data-parallel "
                                 f"over them): use a multiple of {par.ep}")
    kv_len = past if past is not None else seq
    if kv_len is None:
        raise SystemPricingError("a system report needs seq= (KV length in decode, prompt length in prefill)")
    notes: list[str] = []
    options = {"phase": phase, "batch": batch, "seq": seq, "past": past}
    if isinstance(model, Graph):
        source, whole_weights = model, model.metadata.get("whole_model_weight_bytes")
        notes += model.metadata.get("import_notes", [])
    else:
        source, whole_weights = _import_layers_once(model, example_inputs, {k: v for k, v in options.items() if v is not None}, notes)
    layers = _layer_total(source.metadata)
    if par.pp > 1 and (not layers or layers % par.pp):
        legal = [d for d in range(1, layers + 1) if layers % d == 0] if layers else [1]
        raise SystemPricingError(f"pp={par.pp} does not divide the model's {layers or 'unknown number of'} repeated "
                                 f"layers; legal pipeline sizes: {', '.join(map(str, legal))}")
    pre, post = _split(pipelines.pipeline_for_hardware(hw.name))
    lifted = run_pipeline(source, pre)
    rank = lifted
    if par.tp * par.ep > 1:
        from .ir.passes.shard import shard_graph

        try:
            program = shard_graph(lifted, tp=par.tp, ep=par.ep, data_parallel_attention=dp_attention)
        except IRError as e:
            raise SystemPricingError(f"tp={par.tp} ep={par.ep}: {str(e).splitlines()[0]}") from None
        rank = program.rank_graphs[0]
        rank.metadata.update({k: lifted.metadata[k] for k in ("layer_counts", "layer_of_node") if k in lifted.metadata})
        notes += program.notes[:6] + ([f"... {len(program.notes) - 6} more sharding notes"] if len(program.notes) > 6 else [])
    try:
        rank = run_pipeline(rank, post)
    except Exception as e:  # noqa: BLE001 — the rank graph is priced as sharded (noted), not lost
        notes.append(f"the post-shard passes ({post}) failed on the rank graph ({type(e).__name__}: "
                     f"{str(e).splitlines()[0][:120]}); priced without them")
    per_rank_batch = batch // par.ep if dp_attention else batch
    env_kw = dict(phase=phase, seq=seq, batch=batch, past=past)
    rank_report = _price_rank(rank, hw, env_kw, notes)
    env, _ = bind_dims(rank, phase, seq, batch, past, None)
    bind = Binder(env)
    if reprice_grouped_experts(rank_report, rank, bind, hw):
        notes.append("expert matmuls priced as grouped GEMMs (routed rows only; weights of the experts reached)")
    _low_precision(rank_report, hw, sizes["weight_dtype"], sizes["kv_dtype"], notes)
    paths = row_layers(rank_report.rows, rank.metadata.get("layer_of_node") or {})
    collectives = graph_collectives(rank, bind, sysm, sizes["dispatch_dtype"] / 2)
    scaled = scale_repeated_layers(rank_report, rank.metadata)
    in_layers = sum(r.cost.time_s for r, p in zip(scaled.rows, paths) if p)
    total = sum(r.cost.time_s for r in scaled.rows)
    fraction = in_layers / total if total else 1.0
    if par.pp > 1:
        act = _activation_bytes_per_token(rank, bind) * per_rank_batch * (1 if phase == "decode" else kv_len)
        send = collective_time("send_recv", act, 2, sysm, spans_nodes=par.tp * par.ep >= sysm.devices_per_node)
        send.count, send.where = par.pp - 1, "pipeline"
        collectives.append(send)
    unsharded = analyze_graph(run_pipeline(lifted, post), hardware=hw, **env_kw) if rank is not lifted else rank_report
    kv_per_token = scale_repeated_layers(unsharded, lifted.metadata).kv_bytes_per_token * sizes["kv_dtype"] / 2
    weights = _constant_bytes_by_layer(rank, bind, par.pp, sizes["weight_dtype"] / 2)
    activations = max(0.0, rank_report.peak_memory_bytes - rank_report.weights_bytes) / max(1, par.pp)
    report = SystemReport(sysm, par, phase, batch, kv_len, scaled, collectives, fraction, kv_per_token,
                          kv_bytes_per_device=scaled.kv_cache_bytes, weight_bytes_per_device=weights,
                          activation_bytes_per_device=activations, overlap=overlap,
                          options={k: v for k, v in (("weights", weight_dtype), ("kv", kv_dtype),
                                                     ("dispatch", dispatch_dtype)) if v != "bf16"},
                          notes=notes)
    if whole_weights is not None and par.tp * par.ep == 1:
        report.weight_bytes_per_device = whole_weights * sizes["weight_dtype"] / 2 / par.pp
    return report


def _without_collectives(graph: Graph) -> Graph:
    """A copy whose collectives are cut out for the device's kernel pricing: each collective's result becomes a
    graph input of its type and its operand a graph output (so what feeds it is still computed)."""
    g = graph.copy()
    for n in [n for n in g.nodes if n.op.op_name in COLLECTIVE_KINDS]:
        v = g.add_input(f"{n.name}_received", n.outputs[0].dtype, list(n.outputs[0].shape))
        g.replace_all_uses(n.outputs[0], v)
        g.outputs = list(g.outputs) + [x for x in n.inputs if x is not None]
        g.nodes.remove(n)
    return g


def _price_rank(graph: Graph, hw, env_kw: dict, notes: list[str]):
    """Rank graph priced per kernel of the build of the device's target (GPU devices; the Target records say
    which, e.g. h800-sxm -> cuda) or per op, without its collectives."""
    from .api import default_target, kernel_rules

    graph = _without_collectives(graph)
    target = default_target(hw.name)
    if hw.kind == "gpu" and target is not None:
        try:
            # decode steps replay CUDA graphs in serving engines (vLLM, SGLang): launches priced as graph replays
            return analyze_graph(graph, hardware=hw, kernels=kernel_rules(target), target=target,
                                 cuda_graphs=env_kw.get("phase") == "decode", **env_kw)
        except Exception as e:  # noqa: BLE001 — priced op by op instead (noted)
            notes.append(f"kernel grouping failed on the rank graph ({type(e).__name__}: {str(e).splitlines()[0][:100]}); "
                         "priced op by op")
    return analyze_graph(graph, hardware=hw, **env_kw)


def _activation_bytes_per_token(graph: Graph, bind: Binder) -> float:
    """Bytes per token of the residual stream (the embedding's output row): what a pipeline stage sends on."""
    for n in graph.topological():
        if n.op.op_name == "Gather" and n.inputs and n.inputs[0].producer is not None \
                and n.inputs[0].producer.op.op_name == "Constant":
            out = n.outputs[0]
            return float(bind.dim(out.shape[-1], n.name) * DTYPE_BYTES[out.dtype])
    return 0.0


def plan_system(model: Any, example_inputs: Any = None, system: str = "hgx-h800", nodes: range = range(1, 2),
                phase: str = "decode", seq: int = 4096, tpot_slo_s: float | None = None, reference_batch: int = 64,
                **options):
    """Search (tp, ep, pp, dp, batch) for `model` on 1..N nodes of `system` (cost_models/planner.py).
    Returns (profile, accepted plans best first, rejected plans with the reason)."""
    from .cost_models.planner import ModelProfile, search

    sysm = get_system(system)
    graph = model if isinstance(model, Graph) else \
        import_for_system(model, example_inputs, phase=phase, batch=reference_batch, seq=seq)
    notes = list(graph.metadata.get("import_notes", []))
    whole = graph.metadata.get("whole_model_weight_bytes")
    full = run_pipeline(graph, pipelines.pipeline_for_hardware(sysm.device.name))
    env_kw = dict(phase=phase, seq=seq, batch=reference_batch)
    report = _price_rank(full, sysm.device, env_kw, notes)
    env, _ = bind_dims(full, phase, seq, reference_batch, None, None)
    reprice_grouped_experts(report, full, Binder(env), sysm.device)
    batch = (graph.metadata.get("static_sizes") or {}).get("batch", reference_batch)
    if whole is None:
        whole = report.weights_bytes
    profile = ModelProfile.from_report(report, full, batch, seq, phase, whole)
    accepted, rejected = search(profile, sysm, nodes, tpot_slo_s, **options)
    return profile, accepted, rejected, notes
