"""lift-rms-norm: turn a spelled-out RMSNorm into one RMSNorm op (one row kernel instead of three or more).

Matches, over the last axis and with either operand order of the commutative ops:
    r = rsqrt(mean(x ** 2 | x * x, axis=-1, keepdims) + eps)      eps a scalar Constant
    y = (x * r) [* weight]                                       weight a Constant of shape (features,)
as written by Llama/Mistral/Qwen/T5 RMSNorm modules (fp32, no casts between). The op computes
x / sqrt(mean(x^2) + eps) * weight, the same function.
Requires: canonicalize (scalar constants). Guarantees: same outputs; every matched chain is one RMSNorm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..graph import Graph, Node, Value
from ..ops import RMSNorm
from ._rewrite import constant_array, release, use_count
from .base import Pass, register_pass


def _binary(v: Value | None, fn: str) -> Node | None:
    p = v.producer if v is not None else None
    return p if p is not None and p.op.op_name == "Binary" and p.op.fn == fn and len(p.inputs) == 2 else None


def _scalar(graph: Graph, v: Value) -> float | None:
    a = constant_array(graph, v)
    return float(a.reshape(-1)[0]) if a is not None and a.size == 1 else None


def _square_of(graph: Graph, v: Value) -> Value | None:
    """x when `v` is x ** 2 or x * x."""
    pw = _binary(v, "pow")
    if pw is not None and _scalar(graph, pw.inputs[1]) == 2.0:
        return pw.inputs[0]
    sq = _binary(v, "mul")
    if sq is not None and sq.inputs[0] is sq.inputs[1]:
        return sq.inputs[0]
    return None


def _rms_of(graph: Graph, r: Value) -> tuple[Value, float] | None:
    """(x, eps) when `r` is rsqrt(mean(x^2, -1, keepdims) + eps)."""
    rs = r.producer
    if rs is None or rs.op.op_name != "Unary" or rs.op.fn != "rsqrt":
        return None
    add = _binary(rs.inputs[0], "add")
    if add is None:
        return None
    for mean_v, eps_v in (add.inputs, add.inputs[::-1]):
        eps, mean = _scalar(graph, eps_v), mean_v.producer
        if eps is None or mean is None or mean.op.op_name != "Reduce" or mean.op.fn != "mean" or not mean.op.keepdims:
            continue
        x_rank = mean.inputs[0].rank
        if tuple(a % x_rank for a in mean.op.axes) != (x_rank - 1,):
            continue
        x = _square_of(graph, mean.inputs[0])
        if x is not None:
            return x, eps
    return None


def _match(graph: Graph, node: Node) -> tuple[Value, float] | None:
    """(x, eps) when `node` is x * rsqrt(mean(x^2) + eps)."""
    if node.op.op_name != "Binary" or node.op.fn != "mul" or len(node.inputs) != 2:
        return None
    for x, r in (node.inputs, node.inputs[::-1]):
        found = _rms_of(graph, r)
        if found is not None and found[0] is x:
            return found
    return None


def _weight_of(graph: Graph, y: Value) -> tuple[Node, Value] | None:
    """(the mul, its weight) when the only user of `y` multiplies it by a (features,) Constant."""
    users = [n for n in graph.nodes if any(v is y for v in n.inputs)]
    if len(users) != 1 or y in graph.outputs or use_count(graph, y) != 1:
        return None
    mul = users[0]
    if mul.op.op_name != "Binary" or mul.op.fn != "mul" or len(mul.inputs) != 2:
        return None
    w = mul.inputs[1] if mul.inputs[0] is y else mul.inputs[0]
    a = constant_array(graph, w)
    if a is None or w.rank != 1 or not D.equal(w.shape[0], y.shape[-1]) or w.dtype != y.dtype:
        return None
    return mul, w


def lift_one(graph: Graph, node: Node) -> bool:
    """Replace the chain ending at `node` (and its weight multiply) by one RMSNorm; False when it does not match."""
    found = _match(graph, node)
    if found is None:
        return False
    x, eps = found
    if x.dtype != node.outputs[0].dtype:
        return False
    weighted = _weight_of(graph, node.outputs[0])
    last = weighted[0] if weighted else node
    inputs = [x, weighted[1]] if weighted else [x]
    old = last.outputs[0]
    release(graph, last)
    new = graph.add1(RMSNorm(eps=eps, has_weight=bool(weighted)), inputs, name=last.name, source=last.source)
    graph.replace_all_uses(old, new)
    return True


@register_pass
@dataclass(frozen=True)
class LiftRMSNorm(Pass):
    """Spelled-out RMSNorm chains -> RMSNorm ops (see the module docstring)."""

    name: ClassVar[str] = "lift-rms-norm"

    def run(self, graph: Graph) -> Graph:
        lifted = sum(lift_one(graph, n) for n in list(graph.nodes)
                     if n.op.op_name == "Binary" and n.op.fn == "mul" and n in graph.nodes)
        if lifted:
            graph.dead_code_elimination()
        return graph


__all__ = ["LiftRMSNorm", "lift_one"]
