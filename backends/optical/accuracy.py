"""Where the simulated 4f machine loses accuracy: per-op relative error against the reference interpreter.

    from attncc.backends.optical.accuracy import op_errors, error_table
    print(error_table(cm, [x]))      # cm = attncc.compile(model, (x,), target="optical", options=...)

Each optical node is run twice on the machine, with the interpreter's exact (float64) inputs: `isolated` is
its own error (what the device and the mapping cost this op), `through` is the error of its output in the
real run, where every upstream error has already arrived (what the op inherits plus adds). Host ops are exact
numpy, so an error there is inherited only; the table lists them when their inherited error changes (a
softmax or a norm can amplify or damp it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ...ir.interpreter import KERNELS, Context, bind_dims
from .physics import Counters


@dataclass
class OpError:
    """One node: where it ran, its own error (optical nodes) and the error its output carries in the full run."""

    node: str
    op: str
    where: str
    isolated: float | None      # None for host nodes (exact given their inputs)
    through: float


def _rel(y: np.ndarray, ref: np.ndarray) -> float:
    n = float(np.linalg.norm(ref))
    return float(np.linalg.norm(np.asarray(y, np.float64) - ref) / n) if n else float(np.linalg.norm(y))


def _executor(cm_or_executor: Any):
    run = getattr(getattr(cm_or_executor, "executable", None), "run", cm_or_executor)
    if not hasattr(run, "program") or not hasattr(run, "_optical"):
        raise TypeError("op_errors needs a model compiled with target='optical' (or its OpticalExecutor)")
    return run


def op_errors(cm_or_executor: Any, inputs: Sequence[Any]) -> list[OpError]:
    """Per-node relative error ||y − y*|| / ||y*|| of the optical run vs the float64 interpreter (see module doc)."""
    ex = _executor(cm_or_executor)
    g = ex.graph
    arrays = [np.asarray(a.detach().cpu().numpy() if hasattr(a, "detach") else a) for a in inputs]
    ctx = Context(g.constants, bind_dims(g, arrays))
    ref_env = {id(v): np.asarray(a, np.float64) if a.dtype.kind == "f" else a for v, a in zip(g.inputs, arrays)}
    run_env = {id(v): a for v, a in zip(g.inputs, arrays)}
    rows = {r.node: r for r in ex.program.rows}
    out: list[OpError] = []
    for node in g.topological():
        ref_args = [None if v is None else ref_env[id(v)] for v in node.inputs]
        run_args = [None if v is None else run_env[id(v)] for v in node.inputs]
        ref_outs = KERNELS[node.op.op_name](node.op, ref_args, node, ctx)
        row = rows.get(node.name)
        isolated = None
        if row is not None and row.where != "host":
            row.work = Counters()
            iso = ex._optical(node, row, ref_args)
            isolated = _rel(iso[0], np.asarray(ref_outs[0], np.float64))
            row.work = Counters()
            run_outs = ex._optical(node, row, run_args)
        elif node.op.op_name == "Constant":
            run_outs = ref_outs
        else:
            run_outs = KERNELS[node.op.op_name](node.op, run_args, node, ctx)
        for v, r, a in zip(node.outputs, ref_outs, run_outs):
            r = np.asarray(r)
            ref_env[id(v)] = r.astype(np.float64) if r.dtype.kind == "f" else r
            run_env[id(v)] = np.asarray(a)
        if row is not None and node.outputs and np.asarray(ref_outs[0]).dtype.kind == "f":
            out.append(OpError(node.name, node.op.op_name, row.where, isolated,
                               _rel(run_env[id(node.outputs[0])], ref_env[id(node.outputs[0])])))
    return out


def error_table(cm_or_executor: Any, inputs: Sequence[Any]) -> str:
    """`op_errors` as text: every optical node, and host nodes whose carried error moves by more than 10%."""
    errs = op_errors(cm_or_executor, inputs)
    lines = ["per-op relative error vs the float64 interpreter (SIMULATION; isolated: exact inputs, this op only;",
             "carried: this op's output in the full run)", f"{'node':30} {'op':14} {'where':13} {'isolated':>9} {'carried':>9}"]
    last = 0.0
    for e in errs:
        moved = abs(e.through - last) > max(0.1 * last, 1e-3)   # float32 rounding alone is not a move
        if e.isolated is not None or moved or e is errs[-1]:
            iso = "" if e.isolated is None else f"{e.isolated:.4f}"
            lines.append(f"{e.node[:30]:30} {e.op[:14]:14} {e.where:13} {iso:>9} {e.through:9.4f}")
        last = e.through
    return "\n".join(lines)


__all__ = ["OpError", "op_errors", "error_table"]
