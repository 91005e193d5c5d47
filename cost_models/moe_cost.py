"""Expert matmuls priced as the grouped GEMM a deployment runs, not as the IR's exact dense spelling.

The torch frontend spells `grouped_mm(x (S, K), w (E, K, N), offs)` as one MatMul of every row with every
expert (E, S, N), a Where that keeps each row's own expert and a sum over experts (exact, and it runs on
the existing kernels). Priced op by op that is E times the FLOPs and E x S x N of extra traffic. A serving
engine multiplies each routed row by its expert only: 2 S K N FLOPs, reading the weights of the experts
some row is routed to (with S rows spread uniformly over E experts, E (1 - (1 - 1/E)^S) of them) plus the
rows in and out. `grouped_expert_matmuls` finds the spelled pattern; `reprice_grouped_experts` rewrites
the rows of a per-op CostReport in place (the Where and the sum become part of the grouped GEMM).
"""
from __future__ import annotations

from attncc.ir import Graph
from attncc.ir.types import DTYPE_BYTES

from .hardware import HardwareSpec
from .pricing import OpCost, price


def _const_weight(v) -> bool:
    return v is not None and v.producer is not None and v.producer.op.op_name == "Constant"


def grouped_expert_matmuls(graph: Graph) -> list[tuple]:
    """[(matmul node, where node, sum node)] of every spelled grouped_mm: a MatMul of a (1, S, K) operand with
    a constant (E, K, N) expert weight whose only reader is a Where feeding a sum over axis 0."""
    users = graph.users()
    found = []
    for n in graph.nodes:
        if n.op.op_name != "MatMul" or len(n.inputs) != 2 or not _const_weight(n.inputs[1]):
            continue
        w = n.inputs[1]
        if len(w.shape) != 3 or len(n.inputs[0].shape) != 3 or n.inputs[0].shape[0] != 1:
            continue
        readers = users.get(id(n.outputs[0]), [])
        if len(readers) != 1 or readers[0][0].op.op_name != "Where":
            continue
        where = readers[0][0]
        sums = users.get(id(where.outputs[0]), [])
        if len(sums) != 1 or sums[0][0].op.op_name != "Reduce" or tuple(getattr(sums[0][0].op, "axes", ())) != (0,):
            continue
        found.append((n, where, sums[0][0]))
    return found


def experts_touched(experts: int, rows: int) -> float:
    """Expected number of distinct experts `rows` uniformly routed rows reach."""
    return experts * (1.0 - (1.0 - 1.0 / experts) ** rows) if experts else 0.0


def reprice_grouped_experts(report, graph: Graph, bind, hw: HardwareSpec) -> int:
    """Replace the costs of spelled grouped_mm rows of a per-op `report` by the grouped GEMM's; returns how many."""
    by_name = {}
    for r in report.rows:   # per-op rows by name; kernel rows by every IR op they compute
        for name in [r.name] + list(getattr(r, "ops", None) or []):
            by_name.setdefault(name, r)
    done = 0
    for mm, where, total in grouped_expert_matmuls(graph):
        if mm.name not in by_name:
            continue
        experts, k, n = (bind.dim(d, mm.name) for d in mm.inputs[1].shape)
        rows = bind.dim(mm.inputs[0].shape[1], mm.name)
        dt = mm.inputs[1].dtype
        size = DTYPE_BYTES[dt]
        cost = OpCost(flops=2.0 * rows * k * n, main_level=hw.main_memory.name)
        touched = experts_touched(experts, rows)
        weight_bytes = touched * k * n * size
        cost.bytes[hw.main_memory.name] = weight_bytes + rows * (k + n) * size
        cost.details.update({"grouped_experts": experts, "routed_rows": rows, "experts_touched": touched,
                             "weight_bytes": weight_bytes})
        price(cost, hw, dt, "matmul")
        by_name[mm.name].cost = cost
        for fused in (where, total):
            if fused.name in by_name and by_name[fused.name] is not by_name[mm.name]:
                zero = OpCost(main_level=hw.main_memory.name)
                zero.bytes[hw.main_memory.name] = 0.0
                zero.details["fused_into"] = mm.name
                by_name[fused.name].cost = price(zero, hw, dt, "matmul", launches=0)
        done += 1
    return done
