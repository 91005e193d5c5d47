"""canonicalize: local algebraic clean-ups that leave later passes fewer spellings to match.

Rules (each a one-liner in RULES):
- Cast to the value's own dtype -> the value (redundant cast).
- Cast(Cast(x)) where the first cast widens float -> Cast(x) (float32->float64->float16 etc.).
- Reshape to the value's own shape -> the value.
- Reshape(Reshape(x)) -> Reshape(x).
- Transpose with the identity permutation -> the value; Transpose(Transpose(x)) -> one Transpose.
- Unary identity -> the value.
- Expand to the value's own shape -> the value.
- Concat drops operands of length 0 on its axis (a partial-rotary pass-through part when the rotary dim is
  the whole head); a Concat of one operand -> that operand. The empty Slice feeding it is then dead.
- Slice of the whole axis (start 0, step 1, to the end) -> the value.
Requires: nothing. Guarantees: same outputs; dead nodes left behind are removed by `dce`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from .. import dims as D
from ..graph import Graph, Node, Value
from ..ops import Cast, Concat, Expand, Reshape, Transpose, Unary
from .base import Pass, register_pass

_WIDER = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}


def _same_shape(a, b) -> bool:
    return len(a) == len(b) and all(D.equal(x, y) for x, y in zip(a, b))


def _cast(g: Graph, n: Node) -> Value | None:
    (x,) = n.inputs
    if x.dtype == n.op.dtype:
        return x
    p = x.producer
    if p is not None and p.op.op_name == "Cast":
        src = p.inputs[0]
        # a widening intermediate cast never loses information, so it can be skipped
        if src.dtype in _WIDER and x.dtype in _WIDER and _WIDER[x.dtype] >= _WIDER[src.dtype]:
            return src if src.dtype == n.op.dtype else g.add1(Cast(n.op.dtype), [src], name=n.name + "_c", source=n.source)
    return None


def _reshape(g: Graph, n: Node) -> Value | None:
    (x,) = n.inputs
    if _same_shape(x.shape, n.outputs[0].shape):
        return x
    p = x.producer
    if p is not None and p.op.op_name == "Reshape":
        return g.add1(Reshape(tuple(n.outputs[0].shape)), [p.inputs[0]], name=n.name + "_r", source=n.source)
    return None


def _transpose(g: Graph, n: Node) -> Value | None:
    (x,) = n.inputs
    perm = n.op.perm
    if list(perm) == list(range(len(perm))):
        return x
    p = x.producer
    if p is not None and p.op.op_name == "Transpose":
        combined = tuple(p.op.perm[i] for i in perm)
        return g.add1(Transpose(combined), [p.inputs[0]], name=n.name + "_t", source=n.source)
    return None


def _unary(g: Graph, n: Node) -> Value | None:
    return n.inputs[0] if n.op.fn == "identity" else None


def _expand(g: Graph, n: Node) -> Value | None:
    (x,) = n.inputs
    return x if _same_shape(x.shape, n.outputs[0].shape) else None


def _concat(g: Graph, n: Node) -> Value | None:
    axis = n.op.axis % n.outputs[0].rank
    kept = [x for x in n.inputs if not D.equal(x.shape[axis], 0)]
    if len(kept) == len(n.inputs) or not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    return g.add1(Concat(n.op.axis), kept, name=n.name + "_nonempty", source=n.source)


def _slice(g: Graph, n: Node) -> Value | None:
    (x,) = n.inputs
    op = n.op
    whole = op.step == 1 and D.equal(op.start, 0) and (op.stop is None or D.equal(op.stop, x.shape[op.axis]))
    return x if whole else None


RULES: dict[str, Callable[[Graph, Node], Value | None]] = {
    "Cast": _cast,            # no-op casts, widening double casts
    "Reshape": _reshape,      # no-op reshapes, reshape chains
    "Transpose": _transpose,  # identity perms, transpose chains
    "Unary": _unary,          # identity
    "Expand": _expand,        # no-op expands
    "Concat": _concat,        # zero-length operands
    "Slice": _slice,          # whole-axis slices
}


@register_pass
@dataclass(frozen=True)
class Canonicalize(Pass):
    """Apply RULES to a fixed point, then drop dead nodes."""

    name: ClassVar[str] = "canonicalize"
    max_iterations: int = 10

    def run(self, graph: Graph) -> Graph:
        for _ in range(self.max_iterations):
            changed = False
            for n in graph.topological():
                rule = RULES.get(n.op.op_name)
                new = rule(graph, n) if rule else None
                if new is not None and new is not n.outputs[0]:
                    graph.replace_all_uses(n.outputs[0], new)
                    changed = True
            graph.dead_code_elimination()
            if not changed:
                break
        return graph
