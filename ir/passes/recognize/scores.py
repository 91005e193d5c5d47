"""Walk from a Softmax's input back to the q·kᵀ MatMul, collecting scale, softcap and masks.

Accepted between MatMul and Softmax (any order the math allows): Mul/Div by a constant scalar
(scale), c*tanh(x/c) (softcap), Add of a bias (additive mask; a constant 0/-inf position pattern
becomes causal/window), Where(keep, scores, -inf) and masked_fill Where(mask, -inf, scores),
float Casts (fp16/bf16 upcast around the softmax), identity. Anything else is "not attention".
Several additive masks become one mask input (their sum), e.g. BLOOM's ALiBi, added by baddbmm in the
(B*H, S, S) layout, plus the padding mask added after the view to (B, H, S, S).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...graph import Node, Value
from ...ops import Binary, MaskSpec
from .common import Emitter, MatchContext, is_batch_view, need, same_shape
from .mask import is_fill, position_mask, reaches_matmul, trace_keep
from .scale import scalar_factor
from .softcap import match_softcap
from .talking_heads import grid_view_terms, mix_before


@dataclass
class ScoreChain:
    """What sits between q·kᵀ and the softmax, in spec terms."""

    matmul: Node
    scale: float = 1.0
    softcap: float | None = None
    softcap_order: str = "before_mask"
    position: MaskSpec = field(default_factory=MaskSpec)
    mask_input: Value | None = None  # broadcastable to the scores
    mask_kind: str = "none"  # "bool" (True = attend) or "additive"
    mask_inverted: bool = False  # the bool mask marks masked-out entries (masked_fill)
    # every additive bias on the scores (position masks included), split by whether a softcap follows it
    # (tanh makes a -inf entry finite): the fully-masked-row guard may only test the ones after
    biases: list[Value] = field(default_factory=list)
    biases_before_softcap: list[Value] = field(default_factory=list)
    # talking heads (CaiT): (weight (H, H), bias | None) of the logit mix before the softmax / probability mix after
    head_mix: tuple | None = None
    post_mix: tuple | None = None
    gated: tuple | None = None   # ConViT GPSA: (content gate (H,), positional term, renormalize) after the softmax


def _steps(ctx: MatchContext, x: Value) -> tuple[Node, list[tuple]]:
    """Ops from the softmax input back to the MatMul, as (kind, payload) in softmax -> MatMul order; masks
    carry the shape of the scores they apply to (the MatMul's batch layout when under a batch view)."""
    steps: list[tuple] = []
    v = x
    for _ in range(64):
        n = v.producer
        need(n is not None, f"the softmax input traces back to graph input '{v.name}', not to a q·kᵀ MatMul")
        kind = n.op.op_name
        if kind == "MatMul":
            return n, steps
        if kind == "Cast":
            need(n.inputs[0].dtype.startswith(("float", "bfloat")), f"Cast '{n.name}' converts from {n.inputs[0].dtype}, not a float")
            v = n.inputs[0]
            continue
        if (kind == "Unary" and n.op.fn == "identity") or is_batch_view(v):
            v = n.inputs[0]
            continue
        if kind == "Binary" and n.op.fn in ("mul", "div"):
            cap = match_softcap(ctx, v)
            if cap is not None:
                steps.append(("softcap", cap[1]))
                v = cap[0]
                continue
            got = scalar_factor(ctx, v)
            need(got is not None, f"{n.op.fn} '{n.name}' on the scores is not by a constant scalar (scale)")
            steps.append(("scale", got[1]))
            v = got[0]
            continue
        if kind == "Binary" and n.op.fn == "add":
            a, b = n.inputs
            ra, rb = reaches_matmul(a), reaches_matmul(b)
            need(ra != rb, f"cannot tell the scores from the bias in add '{n.name}'")
            scores, bias = (a, b) if ra else (b, a)
            if ctx.scalar(bias) is None:  # adding one number to every score leaves the softmax unchanged
                steps.append(("bias", bias, v.shape))
            v = scores
            continue
        if kind == "Where":
            c, a, b = n.inputs
            if is_fill(ctx, b) and reaches_matmul(a):
                steps.append(("keep", c, v.shape, False))
                v = a
            elif is_fill(ctx, a) and reaches_matmul(b):
                steps.append(("keep", c, v.shape, True))
                v = b
            else:
                need(False, f"where '{n.name}' does not choose between the scores and a -inf/very negative fill")
            continue
        if kind == "Reshape" and grid_view_terms(v):
            need(False, f"the scores reach the softmax through Reshape '{n.name}' of a rank-{n.inputs[0].rank} sum "
                 f"{tuple(n.inputs[0].shape)}: per-axis query-dependent position terms added over the (q_h, q_w, k_h, "
                 "k_w) grid (MViTv2's decomposed relative position, q·R_h + q·R_w), which have no spec field")
        mix = mix_before(ctx, v) if kind == "Transpose" else None
        if mix is not None:
            steps.append(("head_mix", mix[1], mix[2]))
            v = mix[0]
            continue
        what = f"{kind} {n.op.fn}" if kind in ("Unary", "Binary") else kind
        need(False, f"{what} '{n.name}' between the softmax and the q·kᵀ MatMul is not a scale, mask, softcap or cast")
    need(False, "more than 64 ops between the softmax and a MatMul")
    raise AssertionError  # unreachable


def _in_softmax_layout(em: Emitter | None, mask: Value, at: tuple, scores: tuple) -> Value:
    """A mask applied to scores of shape `at` (the MatMul's merged (B*H) batch, under a batch view) as a mask
    on the softmax input's shape `scores`: its batch axes are either all broadcast or all full."""
    if same_shape(at, scores):
        return mask
    r_at, r_sm = len(at) - 2, len(scores) - 2
    shape = (1,) * (len(at) - mask.rank) + tuple(mask.shape)
    if all(d == 1 for d in shape[:r_at]):
        target = (1,) * r_sm + shape[r_at:]
    else:
        need(same_shape(shape[:r_at], at[:r_at]),
             f"mask '{mask.name}' {tuple(mask.shape)} broadcasts over part of the merged batch axes {tuple(at[:r_at])}")
        target = tuple(scores[:r_sm]) + shape[r_at:]
    need(em is not None, f"mask '{mask.name}' is applied under a batch view of the scores")
    return em.reshape(mask, target)


def _combined(em: Emitter | None, old: Value, new: Value, dtype: str, softcap: float | None) -> Value:
    """Two additive masks on the scores are one: their sum (ALiBi plus the padding mask in BLOOM)."""
    need(em is not None, "more than one mask tensor on the scores")
    need(softcap is None, "more than one mask tensor on scores with a softcap (their sum is not exact there)")
    a, b = em.cast(old, dtype), em.cast(new, dtype)
    return em.graph.add1(Binary("add"), [a, b], name=f"{em.hint}_bias", source=em.source)


def walk_scores(ctx: MatchContext, x: Value, em: Emitter | None = None) -> ScoreChain:
    """Read the score chain feeding a softmax; raises NotAttention naming the failed check. With an emitter,
    masks applied in the MatMul's merged batch layout are reshaped to the softmax's, and several additive
    masks are summed into one mask input."""
    mm, steps = _steps(ctx, x)
    q_len, kv_len = mm.outputs[0].shape[-2], mm.outputs[0].shape[-1]
    chain = ScoreChain(mm)
    seen_bias = seen_keep = False  # masks met so far (MatMul -> softmax order)
    for step in reversed(steps):
        kind = step[0]
        if kind == "scale":
            need(chain.softcap is None, "a scale is applied after the softcap")
            need(not seen_bias, "a scale is applied after an additive mask (it would scale the mask)")
            chain.scale *= step[1]
            continue
        if kind == "head_mix":
            need(chain.head_mix is None, "two talking-heads mixes of the logits")
            need(not seen_bias and not seen_keep and chain.mask_input is None and chain.position.is_empty,
                 "a mask is applied before the talking-heads logit mix (it would be mixed across heads)")
            chain.head_mix = (step[1], step[2])
            continue
        if kind == "softcap":
            need(chain.softcap is None, "two softcaps on the scores")
            need(chain.head_mix is None, "a softcap after the talking-heads logit mix (supported: before it)")
            need(not seen_keep, "a position or bool mask is applied before the softcap (tanh would undo -inf)")
            chain.softcap = step[1]
            if seen_bias:
                chain.softcap_order = "after_mask"
            continue
        value, at = step[1], step[2]
        additive = kind == "bias"
        if additive:
            chain.biases.append(value)
        pattern = trace_keep(ctx, value, additive)
        if pattern is not None and kind == "keep" and step[3]:
            pattern.buffer = ~pattern.buffer
        pos = position_mask(pattern, q_len, kv_len) if pattern is not None else None
        if pos is not None:
            if pos.is_empty:
                continue
            need(chain.position.is_empty, "two position masks on the scores")
            chain.position, seen_keep = pos, True
            continue
        need(value.rank <= len(at), f"mask '{value.name}' has more axes than the scores")
        value = _in_softmax_layout(em, value, tuple(at), tuple(x.shape))
        if chain.mask_input is not None:
            need(additive and chain.mask_kind == "additive", "more than one mask tensor on the scores, "
                 "not all additive (bool keep-masks and additive biases are not combined)")
            value = _combined(em, chain.mask_input, value, x.dtype, chain.softcap)
        seen_bias |= additive
        seen_keep |= not additive
        chain.mask_input, chain.mask_kind = value, "additive" if additive else "bool"
        chain.mask_inverted = kind == "keep" and step[3]
    if chain.softcap is not None and chain.softcap_order == "after_mask":
        _split_at_softcap(chain, steps)
    return chain


def _split_at_softcap(chain: ScoreChain, steps: list[tuple]) -> None:
    """Move the biases added before the softcap (steps run softmax -> MatMul) to biases_before_softcap."""
    cap = next(i for i, s in enumerate(steps) if s[0] == "softcap")
    before = [s[1] for s in steps[cap + 1:] if s[0] == "bias"]
    chain.biases_before_softcap = [b for b in chain.biases if any(b is x for x in before)]
    chain.biases = [b for b in chain.biases if not any(b is x for x in before)]
