"""The fully-masked-row guard between the softmax and probs·V, which the Attention op makes redundant.

ONNX's expanded Attention (and code written after it) zeroes the probabilities of query rows whose
additive bias is -inf everywhere, because softmax of an all -inf row is NaN:

    probs = Where(Equal(ReduceMax(bias, axes=[-1], keepdims=1), -inf), 0, Softmax(scores + bias))

The Attention op already outputs zeros for a fully masked row (interpreter/attention_ref.py), so the
guard can be dropped — but only when its condition reads the very bias added to the scores (after any
softcap, so a masked entry stays -inf) and it selects exactly 0; anything else changes the numbers.

torch's dynamo ONNX exporter writes the same guard on the probabilities themselves (a fully masked row
is where softmax gives NaN): `Where(IsNaN(probs), 0, probs)`, imported as `Where(probs != probs, 0, probs)`.
"""
from __future__ import annotations

import math

from ...graph import Node, Value
from .common import MatchContext, is_binary, need, producer_kind, same_shape


def _row_max_of(v: Value, biases: list[Value]) -> Value | None:
    """The bias `v` reduces when `v` = ReduceMax(bias, last axis, keepdims) of one of `biases`, else None."""
    if producer_kind(v) != "Reduce":
        return None
    n = v.producer
    x = n.inputs[0]
    axes = sorted({a % x.rank for a in n.op.axes}) if x.rank else []
    if n.op.fn != "max" or not n.op.keepdims or axes != [x.rank - 1]:
        return None
    return x if any(x is b for b in biases) else None


def _is_all_masked_test(ctx: MatchContext, cond: Value, biases: list[Value]) -> bool:
    """Whether `cond` = Equal(ReduceMax(bias), -inf) (either operand order) for a bias in `biases`."""
    if not is_binary(cond, "eq"):
        return False
    a, b = cond.producer.inputs
    for row_max, fill in ((a, b), (b, a)):
        s = ctx.scalar(fill)
        if s is not None and math.isinf(s) and s < 0 and _row_max_of(row_max, biases) is not None:
            return True
    return False


def check_row_guard(ctx: MatchContext, where: Node, slot: int, probs: Value, biases: list[Value],
                    biases_before_softcap: list[Value]) -> None:
    """Accept `where` (reading the probabilities `probs` at input `slot`) as the fully-masked-row guard
    for a score chain with these additive `biases`, or raise NotAttention saying which part does not match."""
    cond, on_true, on_false = where.inputs
    name = where.name
    need(slot == 2 and on_false is probs,
         f"where '{name}' reads the probabilities as its {'condition' if slot == 0 else 'true branch'}, "
         "not as the value kept where a row is not fully masked")
    need(same_shape(where.outputs[0].shape, probs.shape),
         f"where '{name}' broadcasts the probabilities from {probs.shape} to {where.outputs[0].shape}")
    zero = ctx.scalar(on_true)
    need(zero == 0.0, f"where '{name}' replaces guarded rows with "
         f"{'a non-constant value' if zero is None else zero}, not 0, so it is not a fully-masked-row guard")
    need(not _is_all_masked_test(ctx, cond, biases_before_softcap),
         f"where '{name}' guards rows by a bias added before the softcap (tanh keeps those rows finite, "
         "so the guard changes the output)")
    added = ", ".join(repr(b.name) for b in biases) or "none"
    need(_is_all_masked_test(ctx, cond, biases),
         f"the condition '{cond.name}' of where '{name}' is not Equal(ReduceMax(bias, last axis, keepdims), -inf) "
         f"of a bias added to the scores (biases: {added})")


def nan_guard(ctx: MatchContext, probs: Value) -> Node | None:
    """The Where of `Where(probs != probs, 0, probs)` when those two nodes are all that read `probs`
    (and the comparison feeds only the Where's condition), else None."""
    uses = ctx.users_of(probs)
    wheres = [(n, slot) for n, slot in uses if n.op.op_name == "Where"]
    tests = [n for n, _ in uses if is_binary(n.outputs[0], "ne") and all(x is probs for x in n.inputs)]
    if len(wheres) != 1 or len(tests) != 2 or len(uses) != 3 or tests[0] is not tests[1]:
        return None
    where, slot = wheres[0]
    cond, on_true, on_false = where.inputs
    test_uses = ctx.users_of(tests[0].outputs[0])
    if slot != 2 or cond is not tests[0].outputs[0] or len(test_uses) != 1 or ctx.is_graph_output(cond):
        return None
    if ctx.scalar(on_true) != 0.0 or not same_shape(where.outputs[0].shape, probs.shape):
        return None
    return where


__all__ = ["check_row_guard", "nan_guard"]
