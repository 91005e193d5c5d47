"""Graph -> Plan + compiled library, for one set of concrete input shapes."""
from __future__ import annotations

from typing import Any, Sequence

import tvm

from ... import ir
from ...ir.interpreter import bind_dims
from .attention import AttentionLowering, reference_callable
from .dedupe import dedupe_funcs, one_build
from .errors import LoweringError
from .fusion import classify, folded_slices, fusion_rules, plan_groups
from .groups import GroupBuilder
from .index_copy import in_place, lower_index_copy
from .plan import Plan


class _Shaped:
    def __init__(self, shape):
        self.shape = shape


def concrete_shapes(graph: ir.Graph, input_shapes: Sequence[tuple]) -> tuple[dict[int, tuple], dict[str, int]]:
    """id(Value) -> concrete shape for every value, from the input shapes (symbolic dims solved)."""
    env = bind_dims(graph, [_Shaped(tuple(s)) for s in input_shapes])
    shapes: dict[int, tuple] = {}
    for v, s in zip(graph.inputs, input_shapes):
        shapes[id(v)] = tuple(int(d) for d in s)
    for node in graph.topological():
        for v in node.outputs:
            try:
                shapes[id(v)] = tuple(ir.dims.evaluate(d, env) for d in v.shape)
            except KeyError as e:
                raise LoweringError(node.name, node.op.op_name,
                                       f"output shape {v.shape} depends on a dim the inputs do not fix ({e})") from e
    return shapes, env


def symbolic_shapes(graph: ir.Graph) -> tuple[dict[int, tuple], dict[str, list[int]]]:
    """id(Value) -> IR shape (ints and canonical symbolic dims) for every value, and where each symbol is
    read from the inputs ({name: [input index, axis]}). Raises ValueError when a value's shape uses a symbol
    no input dim names on its own (a shape-generic build could not size it)."""
    sources: dict[str, list[int]] = {}
    for i, v in enumerate(graph.inputs):
        for axis, d in enumerate(v.shape):
            if isinstance(d, str) and ir.dims.canonical(d) == d and d.isidentifier() and d not in sources:
                sources[d] = [i, axis]
    shapes: dict[int, tuple] = {}
    for v in list(graph.inputs) + [o for n in graph.topological() for o in n.outputs]:
        shape = tuple(ir.dims.canonical(d) for d in v.shape)
        missing = set().union(*(ir.dims.symbols(d) for d in shape)) - set(sources)
        if missing:
            raise ValueError(f"value '{v.name}' has shape {shape}: dims {sorted(missing)} are not an input dim")
        shapes[id(v)] = shape
    return shapes, sources


def build_plan(graph: ir.Graph, input_shapes: Sequence[tuple], target: dict, options: dict[str, Any], plugin,
               generic: bool = False):
    """Lower `graph` on `plugin`'s target, for these input shapes or (generic) for every size of the graph's
    symbolic dims, `input_shapes` then only giving the nominal sizes that pick schedules.
    Returns (plan, reference callables); the plan's funcs (attention kernels included) build into one library."""
    with one_build():   # each distinct attention kernel is generated once (identical layers ask again)
        return _build_plan(graph, input_shapes, target, options, plugin, generic)


def _build_plan(graph: ir.Graph, input_shapes: Sequence[tuple], target: dict, options: dict[str, Any], plugin,
                generic: bool):
    concrete, nominal = concrete_shapes(graph, input_shapes)
    plan = Plan()
    if generic:
        shapes, plan.dims = symbolic_shapes(graph)
        dims: dict[str, int] = {}
    else:
        shapes, dims = concrete, nominal
    outputs = {id(v) for v in graph.outputs}
    for v in graph.inputs:
        plan.inputs.append(plan.add_value(v.name, shapes[id(v)], v.dtype, "input"))
    rules = fusion_rules(plugin, options)   # the one grouping decision (attncc.ir.kernels) for this target
    order, group_of = plan_groups(graph, shapes, rules.gate_cols)
    groups = GroupBuilder(graph, plan, shapes, dims, graph.constants, plugin)
    groups.options = options   # read by lowerings with a choice (conv_algorithm)
    attn = AttentionLowering(plan, groups, shapes, target, options, plugin, nominal, rules)
    # slices the attention prologue kernels read in place (attncc.ir.kernels.folded): no buffer, no kernel;
    # they and the views over them are "virtual" values those kernels compute from the source
    folded = folded_slices(graph, shapes, rules, group_of)
    # declare every value first: kernels may write any node output (e.g. attention's present_key)
    for node in order:
        kind = classify(node)
        g = group_of.get(node.name)
        if node.name in folded or (kind == "view" and node.inputs[0].name in attn.virtual):
            attn.fold(node)
            continue
        for v in node.outputs:
            if kind == "const":
                plan.add_value(v.name, shapes[id(v)], v.dtype, "const", source=node.op.key)
            elif kind == "view":
                base = node.inputs[0]
                plan.add_value(v.name, shapes[id(v)], v.dtype, "view", base=_storage_base(plan, base.name))
            elif kind == "index_copy" and in_place(graph, node):   # written in the mutated input's memory
                plan.add_value(v.name, shapes[id(v)], v.dtype, "view", base=node.inputs[0].name)
                plan.aliases[v.name] = node.inputs[0].name
            elif g is not None and g.root is not node:
                continue  # fused away: never materialized
            else:
                plan.add_value(v.name, shapes[id(v)], v.dtype, "output" if id(v) in outputs else "buffer")
    for node in order:
        kind = classify(node)
        if kind == "unsupported":
            raise LoweringError(node.name, node.op.op_name, f"this op has no {plugin.name} lowering; supported ops: "
                                   "Linear, MatMul, Convolution, Pool, Softmax, LayerNorm, RMSNorm, Reduce, CumSum, Unary, Binary, "
                                   "Activation, Where, Cast, Transpose, Concat, Slice, Gather, Expand, Rotary, "
                                   "Reshape, IndexCopy, Attention")
        if kind == "attention":
            attn.lower(node)
        elif kind == "index_copy":
            lower_index_copy(plan, node, shapes, groups, in_place(graph, node))
        elif node.name in folded:
            continue
        elif kind in ("matmul", "conv", "rows", "injective") and group_of[node.name].root is node:
            groups.build(group_of[node.name])
    for v in graph.outputs:
        if v.name not in plan.values:
            raise LoweringError(v.producer.name if v.producer else v.name, "output", "graph output was fused away")
        plan.outputs.append(v.name)
    dedupe_funcs(plan)   # identical layers / repeated shapes: one function, many steps (built once)
    references = {i: reference_callable(n) for i, n in attn.references.items()}
    return plan, references


def _storage_base(plan: Plan, name: str) -> str:
    """Views of views point at the storage that owns the memory."""
    info = plan.values[name]
    return info["base"] if info["storage"] == "view" else name


# the attention kernels were written and measured with TVM's storage rewrite off (their per-task tiles
# are laid out by hand; backends/cpu/attention/build.py): the one library keeps that setting
PASS_CONFIG = {"tirx.disable_storage_rewrite": True}


def compile_module(funcs: dict, names: list[str], target: dict, config: dict):
    """TVM's build (opt level 3, pass options `config`) of the named PrimFuncs, each exported under its name."""
    mod = tvm.IRModule({n: funcs[n].with_attr("global_symbol", n) for n in names})
    with tvm.transform.PassContext(opt_level=3, config=config):
        return tvm.compile(mod, target=tvm.target.Target(target))


def compile_funcs(plan: Plan, target: dict, config: dict | None = None):
    """Build every PrimFunc of the plan into one library; a failure names the node whose kernel broke.
    `config` overrides PASS_CONFIG entries for a target that needs other TVM pass options (cuda: tensor cores)."""
    if not plan.funcs:
        return None
    config = {**PASS_CONFIG, **(config or {})}
    try:
        return compile_module(plan.funcs, list(plan.funcs), target, config)
    except Exception as whole:  # find the culprit: build each function alone
        for step in plan.steps:
            if not step.get("func"):
                continue
            name = step["func"]
            try:
                compile_module(plan.funcs, [name], target, config)
            except Exception as e:
                raise LoweringError(step["node"], step["op"], "TVM failed to compile its kernel", e) from e
        raise LoweringError("<module>", "-", "TVM failed to compile the module", whole) from whole
