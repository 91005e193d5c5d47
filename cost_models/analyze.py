"""analyze_graph: price every op of an IR graph on a device and build a CostReport.

Symbolic dims are bound from `dims`, then `seq`/`batch`/`past`, then must be concrete. Decode
(phase="decode") is one new token: "seq" binds to 1 and attention sees `past` keys (or `seq` when
no past is given); an attention op whose graph has no KV cache is priced as that decode step.
Weights (Constant nodes) are read by the ops that consume them, so each matmul sits at its true
place on the roofline; their total is reported as `weights_bytes`.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

from attncc.ir import Graph, dims as D
from attncc.ir.kernels import FusionRules, kernel_launches, symbolic_shapes
from attncc.ir.types import DTYPE_BYTES

from .hardware import HardwareSpec, get_hardware, with_cuda_graphs
from .kernel_rows import kernel_rows
from .op_rules import VIEW_OPS
from .optical4f_ops import SIMULATION_NOTE, price_optical_node
from .report import CostReport, Row
from .rules import OP_COST_RULES


class UnboundDimError(ValueError):
    """A symbolic dim with no value; names the symbol, the value and how to bind it."""


class UnknownDimError(ValueError):
    """`dims=` names a dim the model does not have; lists the model's dynamic dims."""


class Binder:
    """Evaluates symbolic dims with the user's bindings."""

    def __init__(self, env: dict[str, int]):
        self.env = env

    def dim(self, d, where: str) -> int:
        try:
            return int(D.evaluate(d, self.env))
        except KeyError:
            missing = sorted(D.symbols(d) - set(self.env))
            raise UnboundDimError(
                f"{where}: symbolic dimension {missing[0]!r} (in {d!r}) has no value; pass dims={{'{missing[0]}': N}}"
                f" (or seq=/batch=/past= for 'seq'/'batch'/'past'); bound so far: {self.env or 'nothing'}") from None

    def shape(self, value, where: str) -> tuple[int, ...]:
        return tuple(self.dim(d, f"{where} ({value.name})") for d in value.shape)

    def numel(self, value, where: str) -> int:
        n = 1
        for d in self.shape(value, where):
            n *= d
        return n

    def nbytes(self, value, where: str) -> int:
        return self.numel(value, where) * DTYPE_BYTES[value.dtype]


def _is_weight(v) -> bool:
    return v is not None and v.producer is not None and v.producer.op.op_name == "Constant"


def bind_dims(graph: Graph, phase: str | None, seq: int | None, batch: int | None, past: int | None,
              dims: dict | None) -> tuple[dict[str, int], dict[str, Any]]:
    """The symbol environment and the phase context for pricing."""
    if phase not in (None, "prefill", "decode"):
        raise ValueError(f"phase must be 'prefill', 'decode' or None, got {phase!r}")
    env = {k: int(v) for k, v in (dims or {}).items()}
    if batch is not None:
        env.setdefault("batch", int(batch))
    decode_kv = past if past is not None else seq
    if phase == "decode":
        env.setdefault("seq", 1)
        if decode_kv is None:
            raise UnboundDimError("phase='decode' needs past= (or seq=) for the number of cached keys")
        env.setdefault("past", int(decode_kv))
    else:
        if seq is not None:
            env.setdefault("seq", int(seq))
        if past is not None:
            env.setdefault("past", int(past))
    return env, {"phase": phase or "prefill", "decode_kv": int(decode_kv) if decode_kv is not None else None}


def graph_symbols(graph: Graph) -> set[str]:
    """Every symbolic dim name in the graph's value shapes (its dynamic dims)."""
    values = list(graph.inputs) + [v for n in graph.nodes for v in n.outputs if v is not None]
    return {s for v in values for d in v.shape for s in D.symbols(d)}


def _check_requested_dims(graph: Graph, phase: str | None, shorthands: dict[str, int | None],
                          dims: dict | None) -> tuple[set[str], list[str], dict[str, int]]:
    """Which requested dims bind something. Explicit `dims` must name dims of the model (else UnknownDimError);
    seq/batch/past that bind nothing are returned as (unused, notes) so the report can say so."""
    symbols = graph_symbols(graph)
    listed = ", ".join(sorted(symbols)) if symbols else "none, every dim is static"
    unknown = sorted(set(dims or {}) - symbols)
    if unknown:
        raise UnknownDimError(f"graph '{graph.name}' has no dynamic dim {', '.join(map(repr, unknown))}; "
                              f"its dynamic dims: {listed}")
    # decode prices attention at `past` (or `seq`) cached keys even when the graph has no such dim
    decode_kv = phase == "decode" and any(n.op.op_name in ("Attention", "FusedAttention") for n in graph.nodes)
    unused = {k: v for k, v in shorthands.items()
              if v is not None and k not in symbols and not (decode_kv and k in ("seq", "past"))}
    notes = []
    if unused:
        given = ", ".join(f"{k}={v}" for k, v in unused.items())
        names = "/".join(unused)
        notes.append(f"requested {given} bound nothing: the model has no dim named {names} (its dynamic dims: {listed}); "
                     f"the figures are for the model's own shapes"
                     + ("; bind a named dim with dims={NAME: N} (CLI: --dims NAME=N)" if symbols else ""))
    return symbols, notes, unused


def analyze_graph(graph: Graph, hardware: str | HardwareSpec = "host-cpu", phase: str | None = None,
                  seq: int | None = None, batch: int | None = None, past: int | None = None,
                  dims: dict | None = None, kernels: FusionRules | None = None, target: str = "",
                  cuda_graphs: bool = False) -> CostReport:
    """Cost report of `graph` on `hardware`: a row per kernel (or per op), totals, peak memory, KV-cache bytes.

    `kernels`: the target's grouping parameters (`attncc.ir.kernels.FusionRules`, named `target` in the
    report): one row per kernel the target's build launches, listing its IR ops, views free. None: one row
    per IR op (the optical 4f model prices ops). `cuda_graphs`: GPU launch overheads as CUDA-graph replays.
    `dims` must name dynamic dims of the graph; seq/batch/past that bind none are listed in the
    report's `unused_dims` and notes (the figures are then for the graph's own shapes)."""
    hw = with_cuda_graphs(get_hardware(hardware)) if cuda_graphs else get_hardware(hardware)
    symbols, dim_notes, unused = _check_requested_dims(graph, phase, {"batch": batch, "seq": seq, "past": past}, dims)
    env, ctx = bind_dims(graph, phase, seq, batch, past, dims)
    ctx["graph"] = graph
    bind = Binder(env)
    rows: list[Row] = []
    weights = 0
    order = graph.topological()
    for node in order:
        kind = node.op.op_name
        if kind == "Constant":
            weights += bind.nbytes(node.outputs[0], node.name)
            continue
        if kernels is not None and kind in VIEW_OPS:
            continue   # a free view: no kernel reads or writes it
        rule = OP_COST_RULES.get(kind)
        if rule is None:
            raise ValueError(f"node {node.name!r}: no cost rule for op {kind}; priced ops: {', '.join(sorted(OP_COST_RULES))}")
        cost = rule(node, bind, hw, ctx)
        if hw.kind == "optical":  # same counts, time and energy from the 4f device model
            cost = price_optical_node(node, bind, hw, ctx, cost)
        if kind not in ("Attention", "FusedAttention"):  # weights read by this op, counted here once
            wbytes = sum(bind.nbytes(v, node.name) for v in node.inputs if _is_weight(v))
            cost.details["weight_bytes"] = wbytes
        variant = node.op.spec.variant if kind in ("Attention", "FusedAttention") else ""
        rows.append(Row(node.name, kind, variant, cost))
    grouping = ""
    if kernels is not None:
        rows = _kernel_rows(graph, rows, kernels, bind, hw)
        grouping = f"kernels of target {target}" if target else "kernel groups"
    dtypes = Counter(n.inputs[0].dtype for n in order if n.op.op_name in ("Attention", "FusedAttention", "MatMul", "Linear"))
    shown = {k: v for k, v in env.items() if k in symbols or (k not in unused and k in ("seq", "past"))}
    return CostReport(rows=rows, hardware=hw, phase=ctx["phase"], dims=shown, weights_bytes=weights,
                      dtype=dtypes.most_common(1)[0][0] if dtypes else "float32",
                      peak_memory_bytes=_peak_memory(graph, order, bind, weights),
                      graph_name=graph.name, notes=dim_notes + ([SIMULATION_NOTE] if hw.kind == "optical" else []),
                      unused_dims=unused, grouping=grouping, cuda_graphs=cuda_graphs)


def _kernel_rows(graph: Graph, op_rows: list[Row], rules: FusionRules, bind: Binder, hw: HardwareSpec) -> list[Row]:
    """Per-op rows regrouped into one row per kernel launch of the target's build."""
    by_name = {r.name: r for r in op_rows}
    out = []
    for launch, cost in kernel_rows(kernel_launches(graph, symbolic_shapes(graph), rules),
                                    {k: r.cost for k, r in by_name.items()}, bind, hw, graph):
        root = launch.root
        if root.op.op_name in ("Attention", "FusedAttention"):
            kind = root.op.op_name if launch.part in ("attention", "attention_te", "reference") else f"Attention.{launch.part}"
        else:
            kind = "+".join(launch.op_names)
        out.append(Row(launch.name, kind, by_name[root.name].variant, cost, ops=[n.name for n in launch.nodes],
                       kernel_class=launch.kernel_class))
    return out


def _peak_memory(graph: Graph, order, bind: Binder, weights: int) -> int:
    """Weights plus the largest set of simultaneously live activations (freed after their last use)."""
    last_use: dict[int, int] = {}
    for i, n in enumerate(order):
        for v in n.inputs:
            if v is not None:
                last_use[id(v)] = i
    for v in graph.outputs:
        last_use[id(v)] = len(order)
    live = sum(bind.nbytes(v, "graph input") for v in graph.inputs)
    sizes = {id(v): bind.nbytes(v, "graph input") for v in graph.inputs}
    peak = live
    for i, n in enumerate(order):
        if n.op.op_name == "Constant":
            continue
        for v in n.outputs:
            if n.op.op_name not in VIEW_OPS:
                sizes[id(v)] = bind.nbytes(v, n.name)
                live += sizes[id(v)]
        peak = max(peak, live)
        for v in list(n.inputs) + list(n.outputs):
            if v is not None and last_use.get(id(v), -1) <= i and id(v) in sizes:
                live -= sizes.pop(id(v))
    return int(weights + peak)
