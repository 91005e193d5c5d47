"""torch.export frontend: nn.Module / ExportedProgram -> ir.Graph.

Steps: export (with the user's dynamic dims) -> decompose to core aten while keeping
scaled_dot_product_attention (all overloads), linear, layer_norm, rms_norm, silu and dropout whole
-> walk the FX graph converting each node through TORCH_CONVERTERS -> verify -> clean up and
lift spelled-out attention with the IR pipeline. Nodes whose inputs are all known at import
time (parameters, buffers, literals) are evaluated by torch itself and become constants.
Every converted value is checked against the shape and dtype torch recorded for the node.
"""
from __future__ import annotations

import functools
import inspect
import operator
import re
import warnings
from typing import Any

import torch
import torch.fx

# torch 2.13's own export/pytree code warns about its deprecated LeafSpec; nothing a user can act on
warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)

from ..ir import Graph, Value, dims as D
from ..ir.passes import PASS_REGISTRY, run_pipeline
from ..ir.passes.pipelines import LIFT
from .torch_converters import TORCH_CONVERTERS, TorchConst, TorchContext, TorchImportError
from .torch_converters.attention import SDPA_OVERLOADS
from .torch_converters.context import ir_dtype, to_numpy
from .torch_outputs import (UNFLATTENABLE_OUTPUT, TensorOutputs, on_meta, positional_dynamic_shapes,
                            returns_cache, to_meta)

LIFT_PIPELINE = LIFT   # ir/passes/pipelines.py: every pipeline is defined there

# aten ops kept whole through decomposition so they arrive as one recognizable op
KEEP_WHOLE = (*SDPA_OVERLOADS, "aten.linear.default", "aten.layer_norm.default", "aten.rms_norm.default",
              "aten.silu.default", "aten.dropout.default", "aten.gelu.default",
              "aten.matmul.default")  # 4-D matmul stays one op instead of expand+view+bmm+view

# runtime checks torch.export inserts; they compute nothing
IGNORED = ("aten._assert_tensor_metadata.default", "aten._assert_scalar.default", "aten._assert_async.msg",
           "aten.sym_constrain_range.default", "aten.sym_constrain_range_for_size.default")

# never evaluated at import time even on constant inputs (random or side effects)
# (uninitialized memory too: folded, whatever the allocator held would become a constant of the graph)
NEVER_FOLD = ("aten.dropout.default", "aten.native_dropout.default", "aten.bernoulli.default", "aten.rand.default",
              "aten.randn.default", "aten.randint.default", "aten.feature_dropout.default", "aten.empty.memory_format",
              "aten.empty_permuted.default", "aten.empty_strided.default", "aten.new_empty.default",
              "aten.new_empty_strided.default")


class _Unavailable:
    """An output of a fused op the IR does not compute (e.g. SDPA's logsumexp)."""

    def __init__(self, what: str):
        self.what = what


@functools.lru_cache(maxsize=1)
def _table() -> dict:
    table = torch.export.default_decompositions()
    keep = set(KEEP_WHOLE)
    for op in list(table.keys()):
        if str(op) in keep:
            del table[op]
    return table


def decomposition_table() -> dict:
    """torch.export's default decompositions minus the ops in KEEP_WHOLE (a fresh copy; building it is slow)."""
    return _table().copy()


def export_model(model: torch.nn.Module, example_inputs: Any, dynamic_shapes: Any = None,
                 strict: bool = False) -> torch.export.ExportedProgram:
    """torch.export the model and decompose it to the aten ops the converters know."""
    args = example_inputs if isinstance(example_inputs, tuple) else \
        tuple(example_inputs) if isinstance(example_inputs, list) else (example_inputs,)
    if on_meta(model):  # weights without data: trace on meta throughout (only shapes and dtypes are read)
        args = to_meta(args)
    if returns_cache(model):  # a transformers LM with use_cache=True returns a DynamicCache: export its tensors
        return _export_tensor_outputs(model, args, dynamic_shapes, strict)
    try:
        ep = torch.export.export(model, args, dynamic_shapes=dynamic_shapes, strict=strict)
    except Exception as e:  # noqa: BLE001 — only the "cache object in the outputs" failure is retried
        if UNFLATTENABLE_OUTPUT not in str(e):
            raise
        return _export_tensor_outputs(model, args, dynamic_shapes, strict)
    return ep.run_decompositions(decomposition_table())


def _export_tensor_outputs(model: torch.nn.Module, args: tuple, dynamic_shapes: Any,
                           strict: bool) -> torch.export.ExportedProgram:
    """Export `TensorOutputs(model)`: the model's tensor outputs only (cache objects dropped)."""
    params = list(inspect.signature(model.forward).parameters)
    ep = torch.export.export(TensorOutputs(model), args, strict=strict,
                             dynamic_shapes=positional_dynamic_shapes(dynamic_shapes, params, len(args)))
    return ep.run_decompositions(decomposition_table())


def import_torch(model: torch.nn.Module | torch.export.ExportedProgram, example_inputs: Any = None, *,
                 dynamic_shapes: Any = None, lift: bool = True, strict: bool = False, name: str | None = None) -> Graph:
    """Import a torch model into an ir.Graph.

    model: an nn.Module (exported here with `example_inputs` and `dynamic_shapes`, e.g.
      {"x": {0: Dim("batch"), 1: Dim("seq", max=512)}}) or an ExportedProgram (decomposed here).
    lift: run `canonicalize,constant-fold,lift-attention,canonicalize,dce` (passes not registered are skipped)
      so spelled-out attention becomes Attention ops; reasons for unlifted softmaxes land in graph.diagnostics.
    Dynamic dims keep the user's Dim names ("batch", "seq") in the graph's input shapes.
    """
    forward_params: list[str] = []
    if isinstance(model, torch.export.ExportedProgram):
        ep = model.run_decompositions(decomposition_table())
        default_name = "exported"
    else:
        if example_inputs is None:
            raise TorchImportError(f"importing a {type(model).__name__} needs example_inputs (a tuple of tensors)")
        forward_params = list(inspect.signature(model.forward).parameters)
        ep = export_model(model, example_inputs, dynamic_shapes, strict)
        default_name = type(model).__name__
    graph = convert_exported_program(ep, dynamic_shapes, forward_params, name or default_name)
    if lift:
        pipeline = ",".join(p for p in LIFT_PIPELINE.split(",") if p in PASS_REGISTRY)
        graph = run_pipeline(graph, pipeline)
    return graph


def _user_dim_names(dynamic_shapes: Any, forward_params: list[str], n_inputs: int) -> list[dict[int, str]]:
    """Per user input: axis -> the user's Dim name, read from the dynamic_shapes spec."""
    if dynamic_shapes is None:
        return [{} for _ in range(n_inputs)]
    if isinstance(dynamic_shapes, dict):
        entries = [dynamic_shapes.get(p) for p in forward_params[:n_inputs]]
    else:
        entries = list(dynamic_shapes)
    out = []
    for e in entries + [None] * (n_inputs - len(entries)):
        axes = e.items() if isinstance(e, dict) else enumerate(e) if isinstance(e, (list, tuple)) else ()
        out.append({a: d.__name__ for a, d in axes if d is not None and isinstance(getattr(d, "__name__", None), str)})
    return out


def _symbol_maps(ep, user_nodes, dim_names) -> tuple[dict[str, str], dict[str, int | None]]:
    names: dict[str, str] = {}
    for node, axes in zip(user_nodes, dim_names):
        val = node.meta.get("val")
        for axis, s in enumerate(getattr(val, "shape", ())):
            if isinstance(s, torch.SymInt) and s.node.expr.is_Symbol:
                names.setdefault(str(s.node.expr), axes.get(axis, str(s.node.expr)))
    bounds: dict[str, int | None] = {}
    for sym, vr in ep.range_constraints.items():
        upper = vr.upper
        try:
            bounds[names.get(str(sym), str(sym))] = int(upper) if upper.is_finite else None
        except (TypeError, AttributeError, ValueError):
            bounds[names.get(str(sym), str(sym))] = None
    return names, bounds


def _dim_ranges(ep, names: dict[str, str]) -> dict[str, dict]:
    """{dim name: {"min", "max"}} of every symbolic dim torch.export constrained (None: unbounded)."""
    out = {}
    for sym, vr in ep.range_constraints.items():
        def bound(v):
            try:
                return int(v) if v.is_finite else None
            except (TypeError, AttributeError, ValueError):
                return None
        out[names.get(str(sym), str(sym))] = {"min": bound(vr.lower), "max": bound(vr.upper)}
    return out


def convert_exported_program(ep: torch.export.ExportedProgram, dynamic_shapes: Any = None,
                             forward_params: list[str] | None = None, name: str = "main") -> Graph:
    """Convert a decomposed ExportedProgram node by node (no passes run)."""
    from torch.export.graph_signature import InputKind, OutputKind

    sig = ep.graph_signature
    placeholders = [n for n in ep.graph.nodes if n.op == "placeholder"]
    by_name = {n.name: n for n in placeholders}
    user_nodes = [by_name[s.arg.name] for s in sig.input_specs if s.kind == InputKind.USER_INPUT]
    dim_names = _user_dim_names(dynamic_shapes, forward_params or [], len(user_nodes))
    symbol_names, bounds = _symbol_maps(ep, user_nodes, dim_names)
    graph = Graph(name)
    graph.metadata["dim_ranges"] = _dim_ranges(ep, symbol_names)   # exported folders record them
    ctx = TorchContext(graph, symbol_names, bounds)
    env: dict[torch.fx.Node, Any] = {}
    for spec in sig.input_specs:
        node = by_name[spec.arg.name]
        if spec.kind == InputKind.USER_INPUT:
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor):
                shape = [ctx.sym_to_dim(s) for s in val.shape]
                env[node] = graph.add_input(node.name, ir_dtype(val.dtype, f"input '{node.name}': "), shape)
            else:
                env[node] = ctx.sym_to_dim(val) if isinstance(val, torch.SymInt) else val
        else:
            tensor = ep.state_dict.get(spec.target) if spec.target in ep.state_dict else ep.constants.get(spec.target)
            if tensor is None:
                raise TorchImportError(f"{spec.kind.name.lower()} '{spec.target}' (FX node '{node.name}') has no value")
            env[node] = TorchConst(tensor.detach(), name=spec.target.replace(".", "_"))
    for node in ep.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            break
        if node.op != "call_function":
            raise TorchImportError(f"FX node '{node.name}': unsupported node kind {node.op!r}; supported: call_function")
        ctx.node = node
        first_new = len(graph.nodes)
        env[node] = _convert_node(ctx, node, env)
        _record_layer(graph, node, first_new)
    mutated = [s.target for s in sig.output_specs
               if s.kind not in (OutputKind.USER_OUTPUT, OutputKind.USER_INPUT_MUTATION)]
    if mutated:
        raise TorchImportError(f"the model mutates its own buffers in place ({', '.join(map(str, mutated))}); "
                               "pass such state (e.g. a static KV cache) as an input, which attncc updates in place, "
                               "or return the new tensors (torch.cat(past, new))")
    # inputs the model writes in place (index_copy_ into a static KV cache): their new values lead the graph's
    # outputs; backends alias them to the input's memory and the compiled model returns only the user outputs
    input_mutations = [[i, str(s.target)] for i, s in enumerate(sig.output_specs)
                       if s.kind == OutputKind.USER_INPUT_MUTATION]
    ctx.node = None
    outs = []
    for i, a in enumerate(node.args[0]):  # `node` is the output node here
        v = env[a] if isinstance(a, torch.fx.Node) else a
        if isinstance(v, (TorchConst, bool, int, float)):
            v = ctx.value(v)
        if not isinstance(v, Value):
            raise TorchImportError(f"model output {i} ({a}) is {type(v).__name__}, not a tensor attncc computes")
        outs.append(v)
    graph.set_outputs(outs)
    graph.metadata.update({"frontend": "torch.export", "dim_bounds": bounds})
    if input_mutations:
        graph.metadata["input_mutations"] = input_mutations
    graph.dead_code_elimination()
    graph.verify()
    return graph


_LAYER_PATH = re.compile(r"^(.*?\.\d+)(\.|$)")   # module path up to its first list index: "model.layers.3"


def _record_layer(graph: Graph, node: torch.fx.Node, first_new: int) -> None:
    """graph.metadata["layer_of_node"][ir node] = the repeated module (e.g. "model.layers.3") the FX node ran
    in, "" outside any (embedding, final norm, head); pricing uses it to price repeated layers once."""
    stack = node.meta.get("nn_module_stack") or {}
    path = next(reversed(stack.values()))[0] if stack else ""
    match = _LAYER_PATH.match(path.removeprefix("L['self']."))
    layers = graph.metadata.setdefault("layer_of_node", {})
    for n in graph.nodes[first_new:]:
        layers[n.name] = match.group(1) if match else ""


def _convert_node(ctx: TorchContext, node: torch.fx.Node, env: dict) -> Any:
    target = node.target
    tname = str(target)
    if target is operator.getitem:
        seq, idx = env[node.args[0]], node.args[1]
        item = seq[idx]
        return _Unavailable(f"output {idx} of FX node '{node.args[0].name}'") if item is None else item
    if tname in IGNORED:
        return None
    val = node.meta.get("val")
    if isinstance(val, (torch.SymInt, int)) and not isinstance(val, bool):
        return ctx.sym_to_dim(val)  # shape arithmetic: sym_size, operator.mul/add/floordiv on sizes
    if isinstance(val, (torch.SymFloat, torch.SymBool, float, bool)):
        raise ctx.error(f"symbolic scalar {val} is not representable; supported: integer size arithmetic")
    if not isinstance(target, torch._ops.OpOverload):
        raise ctx.error(f"call to {target} is not an aten op; supported: aten ops and size arithmetic")
    args = _bind(node, env)
    used = [a for a in _flatten(args.values()) if isinstance(a, _Unavailable)]
    if used:
        raise ctx.error(f"uses {used[0].what}, which attncc does not compute (only the primary output of fused ops)")
    if tname not in NEVER_FOLD and _foldable(args):
        return _fold(ctx, node, env)
    conv = TORCH_CONVERTERS.get(tname)
    if conv is None:
        raise ctx.error(f"no converter for aten op '{tname}'. Supported ops: {', '.join(sorted(TORCH_CONVERTERS))}; "
                        "any op whose inputs are all constants is also evaluated at import time")
    out = conv(ctx, args)
    _check_against_torch(ctx, node, out)
    return out


def _bind(node: torch.fx.Node, env: dict) -> dict[str, Any]:
    """Schema argument name -> converted value (defaults filled in)."""
    schema = node.target._schema
    out = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args) and not arg.kwarg_only:
            raw = node.args[i]
        elif arg.name in node.kwargs:
            raw = node.kwargs[arg.name]
        elif arg.has_default_value():
            raw = arg.default_value
        else:
            continue
        out[arg.name] = torch.fx.node.map_arg(raw, lambda n: env[n])
    return out


def _flatten(xs):
    for x in xs:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x


def _foldable(args: dict) -> bool:
    flat = list(_flatten(args.values()))
    return not any(isinstance(x, (Value, str, _Unavailable)) for x in flat)


def _fold(ctx: TorchContext, node: torch.fx.Node, env: dict) -> Any:
    """Evaluate the op with torch on its constant inputs."""
    def real(n):
        v = env[n]
        return v.tensor if isinstance(v, TorchConst) else v

    args = torch.fx.node.map_arg(node.args, real)
    kwargs = torch.fx.node.map_arg(node.kwargs, real)
    args, kwargs = _fold_device(args, kwargs)
    with torch.no_grad():
        out = node.target(*args, **kwargs)
    if isinstance(out, torch.Tensor):
        return TorchConst(out, node.name)
    if isinstance(out, (list, tuple)):
        return tuple(TorchConst(o, f"{node.name}_{i}") if isinstance(o, torch.Tensor) else o for i, o in enumerate(out))
    return out


def _fold_device(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Where a model traced on the meta device folds a constant: values that read no meta tensor (aranges, masks,
    position ids made with device=meta) are computed on the CPU so they keep their values; an op that reads a
    meta tensor (a weight without data) stays on meta, its CPU inputs moved there."""
    tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    if any(t.device.type == "meta" for t in tensors):
        to_meta = lambda x: x.to("meta") if isinstance(x, torch.Tensor) and x.device.type != "meta" else x  # noqa: E731
        return torch.utils._pytree.tree_map(to_meta, args), torch.utils._pytree.tree_map(to_meta, kwargs)
    if isinstance(kwargs.get("device"), torch.device) and kwargs["device"].type == "meta":
        kwargs = {**kwargs, "device": torch.device("cpu")}
    return args, kwargs


def _check_against_torch(ctx: TorchContext, node: torch.fx.Node, out: Any) -> None:
    """Each converted tensor must have the shape and dtype torch recorded (catches converter bugs early)."""
    val = node.meta.get("val")
    pairs = zip(out, val) if isinstance(out, (list, tuple)) and isinstance(val, (list, tuple)) else [(out, val)]
    for got, want in pairs:
        if not isinstance(want, torch.Tensor) or got is None or isinstance(got, _Unavailable):
            continue
        if isinstance(got, (TorchConst, Value)):
            shape = ctx.shape_of(got)
            want_shape = tuple(ctx.sym_to_dim(s) for s in want.shape)
            if len(shape) != len(want_shape) or not all(D.equal(a, b) for a, b in zip(shape, want_shape)):
                raise ctx.error(f"converted to shape {list(shape)} but torch has {list(want_shape)} (converter bug)")
            if ctx.dtype_of(got) != ir_dtype(want.dtype, ctx.where()):
                raise ctx.error(f"converted to dtype {ctx.dtype_of(got)} but torch has {want.dtype} (converter bug)")


__all__ = ["import_torch", "export_model", "convert_exported_program", "decomposition_table", "TorchImportError",
           "KEEP_WHOLE", "LIFT_PIPELINE", "to_numpy"]
