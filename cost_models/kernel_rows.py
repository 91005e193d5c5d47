"""Price kernels, not IR ops: one report row per launch of `attncc.ir.kernels.kernel_launches` (the decision
the backend core builds from), each listing the IR ops it covers.

A fused group's counts are the sum of its ops' counts, less the traffic of the values that never leave the
kernel (each was counted once written by its producer and once read by its consumer), priced once with ONE
launch overhead for the group's kernel class. Attention's prologue/epilogue kernels (layout transposes, RoPE,
KV-cache concat, mask copy) are priced as the copies they are; the attention kernel keeps its own model.
"""
from __future__ import annotations

import copy
from typing import Callable

from attncc.ir.graph import Graph
from attncc.ir.kernels import Launch
from attncc.ir.kernels.pow_exponents import calls_pow

from .hardware import HardwareSpec
from .matmul_cost import matmul_class
from .pricing import OpCost, price

# kernel classes whose launch overhead is priced from efficiency.by_op[<class>] (falling back to the spec-wide one)
LAUNCH_CLASS = {"matmul": "matmul", "gated": "matmul", "conv": "matmul", "rows": "elementwise",
                "injective": "elementwise", "layout": "layout", "rope": "elementwise", "index_copy": "layout",
                "reference": "layout"}


def _combine(costs: list[OpCost], internal_bytes: float, main: str) -> OpCost:
    out = OpCost(main_level=main)
    for c in costs:
        out.flops += c.flops
        out.vector_flops += c.vector_flops
        for lv, b in c.bytes.items():
            out.bytes[lv] = out.bytes.get(lv, 0.0) + b
        out.kv_cache_bytes += c.kv_cache_bytes
        out.kv_bytes_per_token += c.kv_bytes_per_token
        out.kv_read_bytes += c.kv_read_bytes
        out.notes.extend(c.notes)
    out.bytes[main] = max(0.0, out.bytes.get(main, 0.0) - 2.0 * internal_bytes)
    out.details["weight_bytes"] = sum(c.details.get("weight_bytes", 0) for c in costs)
    return out


def _group_cost(launch: Launch, node_costs: dict[str, OpCost], nbytes: Callable, hw: HardwareSpec, dtype: str,
                graph: Graph | None = None) -> OpCost:
    """A fused group: its ops' counts summed, internal values' traffic removed, one launch."""
    internal = sum(nbytes(v) for n in launch.nodes for v in n.outputs if v is not None and n is not launch.root)
    costs = [node_costs[n.name] for n in launch.nodes]
    if len(costs) == 1 and launch.kernel_class not in ("rows", "injective"):
        gemv = matmul_class(costs[0].details.get("m")) if launch.kernel_class == "matmul" else ""
        if gemv == "matmul.gemv":   # the decode regime: priced with its own class
            return price(_copied(costs[0]), hw, dtype, gemv)
        return costs[0]   # priced by its own rule (matmul tiles, conv) with one launch already
    anchor = costs[0].details.get("efficiency", {}).get("kernel_class", "elementwise")
    kind = anchor if launch.kernel_class in ("matmul", "gated", "conv") else \
        ("layout" if all(n.op.op_name in ("Transpose", "Concat", "Slice", "Gather", "Expand", "Cast")
                         for n in launch.nodes) else "elementwise")
    combined = _combine(costs, internal, hw.main_memory.name)
    if launch.kernel_class in ("matmul", "gated", "conv"):
        combined.parallel_tasks = costs[0].parallel_tasks   # the anchor's output tiles are the kernel's tasks
    sub = _subclass(launch, kind, nbytes, graph)
    if kind == "matmul" and matmul_class(costs[0].details.get("m")) == "matmul.gemv":
        sub = "matmul.gemv"   # a decode Linear's epilogue does not change its regime
    return price(combined, hw, dtype, sub)


def _copied(cost: OpCost) -> OpCost:
    c = copy.copy(cost)
    c.bytes, c.details, c.notes = dict(c.bytes), dict(c.details), list(c.notes)
    return c


def _subclass(launch: Launch, kind: str, nbytes: Callable, graph: Graph | None = None) -> str:
    """The kernel's class refined where the cpu build runs a group differently (each sub-class is fitted on its own
    kernels, falling back to its parent's factors in specs without it; measured by cost_model_accuracy.py's plan
    kernels, 2026-12-07: an o-proj/down Linear + residual add ran at ~0.4x the flop rate of a plain or gated Linear
    of the same plan, and x.pow(2) over 98k floats 17x a two-multiply kernel of the same size: a powf call per
    element): "matmul.residual" (a matmul whose epilogue reads a whole output-sized operand), "elementwise.pow"."""
    inside = {id(v) for n in launch.nodes for v in n.outputs if v is not None}
    if kind == "matmul" and launch.root.outputs:
        out = nbytes(launch.root.outputs[0])
        if any(n.op.op_name == "Binary" and any(v is not None and id(v) not in inside and nbytes(v) == out
                                                for v in n.inputs) for n in launch.nodes[1:]):
            return "matmul.residual"
    if kind == "elementwise" and any(calls_pow(graph, n) for n in launch.nodes):   # x**2 etc. are multiplies
        return "elementwise.pow"
    return kind


def _copy(moved: float, hw: HardwareSpec, dtype: str, kind: str = "layout", vector: float = 0.0) -> OpCost:
    cost = OpCost(vector_flops=vector, main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = float(moved)
    return price(cost, hw, dtype, kind)


def attention_part_cost(launch: Launch, parts_seen: int, attention: OpCost, bind, hw: HardwareSpec) -> OpCost:
    """Counts of one of attention's kernels; `parts_seen`: how many parts of the same label came before
    (KV-cache parts run once for the keys, then once for the values)."""
    node, part = launch.root, launch.part
    if part in ("attention", "attention_te", "reference"):
        return attention
    spec = node.op.spec
    named = dict(zip(spec.input_names(), node.inputs))
    size = lambda v: bind.nbytes(v, node.name)  # noqa: E731
    dtype = named["query"].dtype
    if part in ("q_bhsd", "k_bhsd", "v_bhsd"):
        return _copy(2 * size(named[{"q": "query", "k": "key", "v": "value"}[part[0]]]), hw, dtype)
    if part in ("rope_q", "rope_k"):
        x = named["query" if part == "rope_q" else "key"]
        n = bind.numel(x, node.name)
        return _copy(2 * size(x) + size(named["rope_cos"]) + size(named["rope_sin"]), hw, dtype, "elementwise", 3.0 * n)
    which = "key" if parts_seen == 0 else "value"
    past, present = named.get(f"past_{which}"), node.outputs[1 if which == "key" else 2] if len(node.outputs) > 2 else None
    if part == "past_bhsd":
        return _copy(2 * size(past), hw, dtype)
    if part == "kv_cache":   # read past and new rows, write present
        return _copy(2 * size(present) if present is not None else 0.0, hw, dtype)
    if part == "present_bshd":
        return _copy(2 * size(present) if present is not None else 0.0, hw, dtype)
    if part == "mask":
        mask = named["mask"]
        q = bind.shape(named["query"], node.name)
        full = q[0] * spec.num_heads * (q[1] if spec.layout == "bshd" else q[2]) * bind.shape(mask, node.name)[-1]
        return _copy(size(mask) + full * (1 if spec.mask.input == "bool" else 4), hw, dtype)
    if part == "out_bshd":
        return _copy(2 * size(node.outputs[0]), hw, dtype)
    raise ValueError(f"node {node.name!r}: no cost rule for attention part {part!r}")


def resident_level(launches: list[Launch], bind, hw: HardwareSpec):
    """(the CPU's shared last-level cache, the fraction of the working set it holds) or None (no such cache).

    The working set is every distinct value the kernels read or write (weights, inputs, outputs, intermediates,
    KV cache; reshaped views not counted twice). A model called again and again (a serving loop over one block,
    the block benchmarks) finds min(1, capacity / working set) of its operands in that cache, the rest in DRAM."""
    if hw.kind != "cpu":
        return None
    shared = [lv for lv in hw.on_chip_levels if not lv.per_unit]
    if not shared:
        return None
    llc = max(shared, key=lambda lv: lv.capacity_bytes)
    values = {id(v): (v, n.name) for ln in launches for n in ln.nodes if n.op.op_name not in ("Reshape",)
              for v in (*n.inputs, *n.outputs) if v is not None}
    total = sum(bind.nbytes(v, name) for v, name in values.values())
    return llc, (min(1.0, llc.capacity_bytes / total) if total else 1.0)


def _in_cache(cost: OpCost, level, fraction: float, hw: HardwareSpec, dtype: str) -> OpCost:
    """`cost` with `fraction` of its main-memory bytes served by `level` (re-priced with the same kernel class)."""
    main = hw.main_memory.name
    if not cost.time_s or not cost.bytes.get(main):
        return cost
    kind = cost.details.get("efficiency", {}).get("kernel_class") or cost.details.get("kernel", "elementwise")
    cost = _copied(cost)
    moved = cost.bytes[main] * fraction
    cost.bytes[level.name] = cost.bytes.get(level.name, 0.0) + moved
    cost.bytes[main] -= moved
    if not cost.bytes[main]:
        del cost.bytes[main]
    cost.details["resident_in"], cost.details["resident_fraction"] = level.name, round(fraction, 4)
    return price(cost, hw, dtype, kind)


def kernel_rows(launches: list[Launch], node_costs: dict[str, OpCost], bind, hw: HardwareSpec,
                graph: Graph | None = None) -> list[tuple]:
    """(launch, OpCost) per kernel, in launch order; the part of main-memory traffic the last-level cache holds
    (`resident_level`) priced at its bandwidth. `graph` tells which Pow kernels call pow per element."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    resident = resident_level(launches, bind, hw)
    for launch in launches:
        root = launch.root
        nbytes = lambda v: bind.nbytes(v, root.name)  # noqa: E731
        dtype = root.outputs[0].dtype if root.outputs else "float32"
        if launch.kernel_class in ("attention", "layout", "rope", "reference") and root.op.op_name in (
                "Attention", "FusedAttention"):
            key = (root.name, launch.part)
            cost = attention_part_cost(launch, seen.get(key, 0), node_costs[root.name], bind, hw)
            seen[key] = seen.get(key, 0) + 1
        elif launch.kernel_class in ("layout", "index_copy") and root.op.op_name == "IndexCopy":
            cost = node_costs[root.name] if launch.part == "rows" else _copy(2 * nbytes(root.outputs[0]), hw, dtype)
        else:
            cost = _group_cost(launch, node_costs, nbytes, hw, dtype, graph)
        if resident is not None:
            cost = _in_cache(cost, *resident, hw, dtype)
        out.append((launch, cost))
    return out
