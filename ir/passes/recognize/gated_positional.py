"""ConViT's gated positional self-attention after the softmax: probs·c_h + P (then optionally divided by its row
sums) before ·V, where c (1, H, 1, 1) and P (.., H, Sq, Skv) are computed from constants only (ConViT's
1 - σ(g) and σ(g)·softmax(pos_proj(r_ij)): the positional softmax does not read the input)."""
from __future__ import annotations

import numpy as np

from ...graph import Value
from .common import MatchContext, need


def _single(ctx: MatchContext, v: Value, op: str, fn: str | None = None):
    uses = ctx.users_of(v)
    if len(uses) != 1 or uses[0][0].op.op_name != op or (fn is not None and uses[0][0].op.fn != fn):
        return None
    return uses[0]


def gated_blend(ctx: MatchContext, probs: Value):
    """(blended value feeding ·V, content gate (H,), positional term (1|B, H, Sq, Skv), renormalize) or None."""
    use = _single(ctx, probs, "Binary", "mul")
    if use is None or probs.rank != 4:
        return None
    mul, slot = use
    gate = ctx.const(mul.inputs[1 - slot])
    H = probs.shape[1]
    if gate is None or gate.size != H or gate.ndim > 4 or (gate.ndim >= 3 and gate.shape[-3] != H):
        return None
    use = _single(ctx, mul.outputs[0], "Binary", "add")
    need(use is not None, f"the per-head weighted probabilities '{mul.outputs[0].name}' are not added to a positional "
         "attention map (gated positional self-attention: gate·softmax + positional term)")
    add, slot = use
    pos = ctx.const(add.inputs[1 - slot])
    need(pos is not None, f"the term added to the gated probabilities in '{add.name}' is computed from the input: "
         "a gated positional map must not depend on the input (ConViT's positional softmax)")
    pos = np.asarray(pos).reshape((1,) * (4 - pos.ndim) + pos.shape)
    need(pos.shape[1] == H and pos.shape[2:] == tuple(probs.shape[2:]),
         f"the positional term {pos.shape} is not (B|1, {H}, {probs.shape[2]}, {probs.shape[3]})")
    if pos.shape[0] > 1 and np.array_equal(pos, np.broadcast_to(pos[:1], pos.shape)):
        pos = pos[:1]                      # the model expanded one map over the batch
    out, renorm = add.outputs[0], False
    uses = ctx.users_of(out)
    div = [n for n, s in uses if n.op.op_name == "Binary" and n.op.fn == "div" and s == 0]
    red = [n for n, s in uses if n.op.op_name == "Reduce" and n.op.fn == "sum"]
    if len(uses) == 2 and div and red and _is_row_sum(red[0], div[0]):
        out, renorm = div[0].outputs[0], True
    return out, gate.reshape(H).astype(np.float32), pos.astype(np.float32), renorm


def _is_row_sum(red, div) -> bool:
    """div = x / sum(x, last axis) (keepdims, or unsqueezed back by a Reshape)."""
    axes = tuple(a % red.inputs[0].rank for a in red.op.axes)
    if axes != (red.inputs[0].rank - 1,):
        return False
    d = div.inputs[1]
    return d is red.outputs[0] or (d.producer is not None and d.producer.op.op_name == "Reshape"
                                   and d.producer.inputs[0] is red.outputs[0])
