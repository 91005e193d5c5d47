"""constant-fold: evaluate nodes whose inputs are all constants, replacing them with one Constant.

Uses the reference interpreter's kernels, so folding is exactly as precise as the oracle.
Skips Attention (never worth folding) and results larger than `max_elements`.
Requires: nothing. Guarantees: same outputs; no node with only constant inputs remains (within the size cap).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import dims as D
from ..graph import Graph
from ..interpreter import Context
from ..interpreter.kernels import KERNELS
from .base import Pass, register_pass


def _symbolic_attrs(op) -> bool:
    """Whether a shape/slice attribute names a symbolic dim (its value is only known at run time)."""
    for name in ("shape", "start", "stop"):
        v = getattr(op, name, None)
        if any(isinstance(x, str) for x in (v if isinstance(v, tuple) else (v,))):
            return True
    return False


@register_pass
@dataclass(frozen=True)
class ConstantFold(Pass):
    """Fold constant subgraphs (e.g. transposed weights, mask buffers, rope tables)."""

    name: ClassVar[str] = "constant-fold"
    max_elements: int = 1 << 26

    def run(self, graph: Graph) -> Graph:
        ctx = Context(graph.constants)
        for n in graph.topological():
            if n.op.op_name in ("Constant", "Attention") or not n.inputs:
                continue
            if not all(v is not None and v.producer is not None and v.producer.op.op_name == "Constant" for v in n.inputs):
                continue
            if not all(D.is_static(v.shape) for v in n.outputs) or _symbolic_attrs(n.op):
                continue
            if any(int(np.prod(v.shape)) > self.max_elements for v in n.outputs):
                continue
            args = [graph.constants[v.producer.op.key] for v in n.inputs]
            outs = KERNELS[n.op.op_name](n.op, args, n, ctx)
            for v, a in zip(n.outputs, outs):
                c = graph.add_constant(np.ascontiguousarray(np.asarray(a).astype(np.asarray(a).dtype)), name=v.name + "_folded")
                graph.replace_all_uses(v, c)
        graph.dead_code_elimination()
        return graph
