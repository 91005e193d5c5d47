"""The public Python surface: import_model, compile, analyze, targets."""
from __future__ import annotations

from typing import Any

from . import pipelines
from .compiled import CompiledModel
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


def compile(model: Any, example_inputs: Any = None, target: str = "cpu", passes: str | None = None,
            dump_dir: str | None = None, options: dict | None = None) -> CompiledModel:
    """Import, optimize and lower `model` for `target`; returns a callable CompiledModel."""
    from .backends import get_backend

    backend = get_backend(target)
    pipeline = passes if passes is not None else pipelines.default_pipeline(target)
    pipelines.validate(pipeline)  # fail on a typo before the (slow) import
    source = import_model(model, example_inputs)
    graph = run_pipeline(source, pipeline, dump_dir=dump_dir)
    executable = backend.lower(graph, dict(options or {}))
    compiled = CompiledModel(graph, executable, target, pipeline, backend.hardware, source_graph=source)
    if example_inputs is not None and any(isinstance(d, str) for v in graph.inputs for d in v.shape):
        compiled.bind_dims(example_inputs if isinstance(example_inputs, (list, tuple)) else [example_inputs])
    return compiled


def analyze(model_or_graph: Any, example_inputs: Any = None, hardware: str = "host-cpu", **options):
    """Cost report of a model (or an already optimized graph) on `hardware` (see `attncc.hardware()`).

    Options: phase ("prefill" | "decode"), seq, batch, past (KV length for decode), dims (symbol values).
    """
    from .cost_models import analyze_graph

    graph = model_or_graph if isinstance(model_or_graph, Graph) else \
        optimize(import_model(model_or_graph, example_inputs), target="reference")
    return analyze_graph(graph, hardware=hardware, **options)


def targets() -> list[dict]:
    """Registered compile targets with their status (available / planned)."""
    from .backends import TARGETS

    return [{"name": t.name, "description": t.description, "status": t.status} for t in TARGETS.values()]


def hardware() -> list[str]:
    """Names of the hardware specs in the cost-model catalog."""
    from .cost_models import list_hardware

    return list_hardware()
