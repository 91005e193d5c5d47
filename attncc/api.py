"""The public Python surface: import_model, compile, analyze, targets."""
from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from . import pipelines
from .compiled import CompiledModel
from .errors import ArtifactError
from .frontends import import_model as _import_model
from .ir import Graph
from .ir.passes import run_pipeline


def import_model(model: Any, example_inputs: Any = None, **options) -> Graph:
    """Import a torch.nn.Module (with example inputs), an onnx.ModelProto or a .onnx path into an ir.Graph.

    Spelled-out attention is lifted into Attention ops; every softmax that was not lifted
    is recorded in `graph.diagnostics` with the reason.
    """
    return _import_model(model, example_inputs, **options)


def optimize(graph: Graph, target: str = "cpu", passes: str | None = None, dump_dir: str | None = None) -> Graph:
    """Run `passes` (default: the target's default pipeline) on a copy of `graph`."""
    return run_pipeline(graph, passes if passes is not None else pipelines.default_pipeline(target), dump_dir=dump_dir)


# progress of the slow stages (import, passes, lowering); the CLI shows it on stderr with a TTY or --verbose
log = logging.getLogger("attncc")


def compile(model: Any, example_inputs: Any = None, target: str = "cpu", passes: str | None = None,
            dump_dir: str | None = None, options: dict | None = None, dynamic_shapes: Any = None,
            strict: bool = False, parallel: dict | None = None) -> CompiledModel:
    """Import, optimize and lower `model` for `target`; returns a callable CompiledModel.

    dynamic_shapes: for a torch model, torch.export's dynamic_shapes (e.g. {"x": {1: torch.export.Dim("seq")}}),
      so the compiled model accepts other sizes along those dims; ONNX models declare them with dim_param.
    strict: a node lowered as generic or reference code (see `CompiledModel.diagnostics`) raises FallbackError
      instead of a FallbackWarning.
    parallel: {"tp": .., "ep": .., "pp": ..} inside a torch.distributed job (torchrun, or
      attncc.distributed.launch): compiles this rank's shard and returns an attncc.distributed.ShardedModel
      that takes the full inputs and returns the full outputs on every rank.
    """
    if parallel is not None:
        if passes is not None or dump_dir is not None:
            raise TypeError("parallel= builds each rank's segments with the target's default pipeline: "
                            "passes= and dump_dir= are not supported with it")
        from .distributed import compile_sharded

        return compile_sharded(model, example_inputs, target=target, parallel=parallel, options=options,
                               dynamic_shapes=dynamic_shapes, strict=strict)
    from .backends import get_backend

    stages: dict[str, float] = {}
    clock = time.perf_counter()
    # the backend's modules and TVM's runtime library only: TVM's compiler (~2-4 s to import) is imported by a
    # build, so a compile whose every build is in the cache (~/.cache/attncc) never loads it
    backend = get_backend(target)
    stages["load backend"] = time.perf_counter() - clock
    pipeline = passes if passes is not None else pipelines.default_pipeline(target, options)
    pipelines.validate(pipeline)  # fail on a typo before the (slow) import
    log.info("importing %s", model if isinstance(model, (str, os.PathLike)) else type(model).__name__)
    clock = time.perf_counter()
    source = import_model(model, example_inputs, **({"dynamic_shapes": dynamic_shapes} if dynamic_shapes is not None else {}))
    stages["import"] = time.perf_counter() - clock
    log.info("running %d passes", len(pipelines.split_pipeline(pipeline)))
    clock = time.perf_counter()
    graph = _run_passes(source, pipeline, dump_dir)
    stages["passes"] = time.perf_counter() - clock
    log.info("lowering %d nodes for %s", len(graph.nodes), target)
    clock = time.perf_counter()
    executable = backend.lower(graph, dict(options or {}))
    stages["lower"] = time.perf_counter() - clock
    program = executable.artifacts.get("program")
    if program is not None and getattr(program, "symbolic", False):
        stages_note = "lower (a model with dynamic dims builds at its first call)"
        stages[stages_note] = stages.pop("lower")
    log.info("compiled in %.2f s: %s", sum(stages.values()), ", ".join(f"{k} {v:.2f} s" for k, v in stages.items()))
    compiled = CompiledModel(graph, executable, target, pipeline, backend.hardware, source_graph=source, strict=strict,
                             price=analyze)
    compiled.compile_stages = stages   # seconds per stage (`attncc compile --verbose` prints them)
    compiled.check_fallbacks()
    if example_inputs is not None and any(isinstance(d, str) for v in graph.inputs for d in v.shape):
        compiled.bind_dims(example_inputs if isinstance(example_inputs, (list, tuple)) else [example_inputs])
    return compiled


def _run_passes(source: Graph, pipeline: str | list, dump_dir: str | None) -> Graph:
    """The pipeline verifying only its result (verifying after each pass was 0.2-0.5 s of a 12-layer model's
    compile, load ~1); any failure runs it again verifying after each pass, so the error names the pass at fault."""
    try:
        graph = run_pipeline(source, pipeline, verify=False, dump_dir=dump_dir)
        graph.verify()
        return graph
    except Exception:  # noqa: BLE001 - rerun below raises the precise error (passes are pure: the same one)
        return run_pipeline(source, pipeline, dump_dir=dump_dir)


def analyze(model_or_graph: Any, example_inputs: Any = None, hardware: str = "host-cpu", system: str | None = None,
            parallel: dict | None = None, **options):
    """Cost report of a model (or an already optimized graph) on `hardware` (see `attncc.hardware()`).

    With `system` (e.g. "dgx-h100", see `attncc.cost_models.list_systems()`) and/or `parallel` ({"tp": 8, "ep": 1,
    "pp": 1, "dp": 1}): a SystemReport of one step per rank (compute, memory, collectives, memory per device,
    tokens/s); extra options: overlap ("none" | "full"), weight_dtype / kv_dtype / dispatch_dtype ("bf16" | "fp8",
    "int8" for kv). See attncc/systems_api.py.

    Options: phase ("prefill" | "decode"), seq, batch, past (KV length for decode), dims (symbol values:
    each must name a dynamic dim of the model). seq/batch/past that bind no dim are named in the report's notes.
    target: whose build is priced (default: the device's target, e.g. h100-sxm -> cuda): one row per kernel
    that build launches, with the IR ops it covers; per_op=True prices one row per IR op instead.
    cuda_graphs=True prices GPU launches as CUDA-graph replays (cited in the device spec).
    """
    from .cost_models import analyze_graph, get_hardware

    from .cost_models.repeated import scale_repeated_layers

    if system is not None or parallel is not None:
        from .systems_api import analyze_system

        return analyze_system(model_or_graph, example_inputs, system=system or "dgx-h100", parallel=parallel, **options)
    target = None if options.pop("per_op", False) else \
        options.pop("target", None) or default_target(get_hardware(hardware).name)
    options["kernels"], options["target"] = kernel_rules(target), target or ""
    notes: list[str] = []
    whole_weights = None
    if isinstance(model_or_graph, Graph):
        graph = model_or_graph
    else:
        source, whole_weights = _import_layers_once(model_or_graph, example_inputs, options, notes)
        graph = run_pipeline(source, pipelines.pipeline_for_hardware(get_hardware(hardware).name))
    report = analyze_graph(graph, hardware=hardware, **options)
    _price_expert_matmuls_grouped(report, graph, options)
    report = scale_repeated_layers(report, graph.metadata, whole_weights)
    static = graph.metadata.get("static_sizes") or {}
    if static:  # exported at the requested sizes: they did bind, as static dims
        report.unused_dims = {k: v for k, v in report.unused_dims.items() if k not in static}
        report.notes = [n for n in report.notes if not n.startswith("requested ") or report.unused_dims]
        report.dims.update({k: v for k, v in static.items() if k != "seq" or options.get("phase") != "decode"})
    report.notes.extend(notes)
    return report


def _price_expert_matmuls_grouped(report, graph: Graph, options: dict) -> None:
    """Expert matmuls the frontend spelled densely (every row x every expert, then a select) priced as the grouped
    GEMM a serving engine runs (cost_models/moe_cost.py); noted in the report."""
    from .cost_models.analyze import Binder, bind_dims
    from .cost_models.moe_cost import reprice_grouped_experts

    env, _ = bind_dims(graph, options.get("phase"), options.get("seq"), options.get("batch"), options.get("past"),
                       options.get("dims"))
    if reprice_grouped_experts(report, graph, Binder(env), report.hardware):
        report.notes.append("expert matmuls priced as grouped GEMMs (routed rows only; weights of the experts reached)")


def _import_layers_once(model: Any, example_inputs: Any, options: dict, notes: list[str]) -> tuple[Graph, int | None]:
    """Import for pricing with one layer per distinct layer structure (a torch model's repeated decoder layers are
    exported once and their rows scaled by the count); returns the graph and the whole model's weight bytes."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is None or not isinstance(model, torch.nn.Module):
        return _import_for_pricing(model, example_inputs, options, notes), None
    from .frontends.repeated_layers import parameter_bytes, representative_layers

    with representative_layers(model) as groups:
        source = _import_for_pricing(model, example_inputs, options, notes)
    if groups is not None:
        source.metadata["layer_counts"] = groups.counts_by_path()
    return source, parameter_bytes(model)


def default_target(hardware: str) -> str | None:
    """The target whose build a catalog device's report prices, read from the Target records' `devices` (None:
    priced op by op)."""
    from .cost_models.target import target_for_device

    return target_for_device(hardware)


def kernel_rules(target: str | None):
    """The grouping parameters (`attncc.ir.kernels.FusionRules`) of `target`'s build, or None for targets
    priced op by op (optical: its own 4f program; reference: the interpreter)."""
    if target in (None, "", "optical", "reference"):
        return None
    from .backends import get_backend
    from .backends.core.fusion import fusion_rules

    plugin = getattr(get_backend(target), "plugin", None)
    return fusion_rules(plugin) if plugin is not None else None   # a backend off the core: priced op by op


def _import_for_pricing(model: Any, example_inputs: Any, options: dict, notes: list[str]) -> Graph:
    """Import a model for `analyze`. When the user asks for other shapes (seq/batch/phase) of a torch model,
    export it with dynamic batch (axis 0) and sequence (axis 1) dims so every op is priced at those shapes."""
    wants_shapes = any(options.get(k) is not None for k in ("phase", "seq", "batch", "past", "dims"))
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if not wants_shapes or torch is None or not isinstance(model, torch.nn.Module):
        return import_model(model, example_inputs)
    from torch.export import Dim

    args = example_inputs if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    # torch.export specializes size-1 dims; trace with at least 2 along batch and sequence (values don't matter)
    args = tuple(a.expand(max(a.shape[0], 2), max(a.shape[1], 2), *a.shape[2:]).contiguous()
                 if torch.is_tensor(a) and a.dim() >= 2 else a for a in args)
    limits = {"batch": 1 << 16, "seq": 1 << 20}
    for _ in range(3):  # torch.export suggests tighter ranges (e.g. a RoPE table's length); retry with them
        batch, seq = Dim("batch", min=1, max=limits["batch"]), Dim("seq", min=2, max=limits["seq"])
        dynamic = tuple({0: batch, 1: seq} if torch.is_tensor(a) and a.dim() >= 2 else None for a in args)
        try:
            return import_model(model, args, dynamic_shapes=dynamic)
        except Exception as e:  # noqa: BLE001 — any export failure falls back to the example shapes (noted)
            error = e
            suggested = dict(re.findall(r"(batch|seq) = Dim\('\w+', max=(\d+)\)", str(e)))
            if not suggested:
                break
            limits.update({k: int(v) for k, v in suggested.items()})
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
    batch = options.get("batch")
    seq = 1 if options.get("phase") == "decode" else options.get("seq")
    if batch is not None or seq is not None:  # export again at the requested sizes (static)
        static = tuple(a[:1, :1].expand(batch or a.shape[0], seq or a.shape[1], *a.shape[2:]).contiguous()
                       if torch.is_tensor(a) and a.dim() >= 2 else a for a in args)
        try:
            graph = import_model(model, static)
        except Exception as e:  # noqa: BLE001 — fall back to the example shapes below (noted)
            reason += f"; at the requested sizes: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        else:
            shape = "x".join(str(d) for d in static[0].shape) if torch.is_tensor(static[0]) else "?"
            notes.append(f"could not export with dynamic batch/seq dims ({reason}); exported again at the "
                         f"requested sizes (first input {shape})")
            graph.metadata["static_sizes"] = {k: v for k, v in (("batch", batch), ("seq", seq)) if v is not None}
            return graph
    notes.append(f"could not export with dynamic batch/seq dims ({reason}); non-attention ops are priced at the "
                 "example input shapes")
    return import_model(model, example_inputs)


def load(directory: str) -> CompiledModel:
    """Load a folder written by `CompiledModel.export` (no recompilation where the backend ships binaries).

    A missing, truncated or malformed file raises ArtifactError (an OSError) naming the file."""
    from .backends import get_backend
    from .ir import graph_from_json

    manifest_path = os.path.join(directory, "manifest.json")
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(f"{directory!r} is not an attncc export: it has no manifest.json")
    for path in sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".json")):
        _read_json(path)  # a truncated manifest/graph/plan is named here, before the backend reads it
    manifest = _read_json(manifest_path)
    missing = [k for k in ("target", "pipeline", "hardware") if k not in manifest]
    if missing:
        raise ArtifactError(f"{manifest_path}: not an attncc manifest (missing {', '.join(missing)}); re-export the model")
    from .compiled import verify_export

    verify_export(directory, manifest)  # before the backend maps any library
    backend = get_backend(manifest["target"])
    graph_path = os.path.join(directory, "graph.json")
    try:
        with open(graph_path) as f:
            graph = graph_from_json(f.read())
        loader = getattr(backend, "load", None)
        executable = loader(directory) if loader else backend.lower(graph, {})
    except ArtifactError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        where = getattr(e, "filename", None) or directory
        raise ArtifactError(f"cannot load the attncc export {directory!r}: {where}: {type(e).__name__}: {e}; "
                            "re-export the model") from e
    compiled = CompiledModel(graph, executable, manifest["target"], manifest["pipeline"], manifest["hardware"],
                             price=analyze)
    compiled.check_fallbacks()
    return compiled


def _read_json(path: str) -> Any:
    """Parse a JSON file of an export folder; ArtifactError names the file when it is unreadable or truncated."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ArtifactError(f"cannot read {path}: {e} (the export folder is incomplete or corrupt; re-export the model)") from e


def targets() -> list[dict]:
    """Registered compile targets with their status (available / planned)."""
    from .backends import TARGETS

    return [{"name": t.name, "description": t.description, "status": t.status} for t in TARGETS.values()]


def hardware() -> list[str]:
    """Names of the hardware specs in the cost-model catalog."""
    from .cost_models import list_hardware

    return list_hardware()
