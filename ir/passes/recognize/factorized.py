"""CoaT's factorized attention: out = scale · q · (softmax over tokens of k)ᵀ · v, i.e. Softmax(k, axis=-2) ->
swap of the last two axes -> MatMul with V -> MatMul(q, ·) [-> Mul by a constant scalar]. It becomes an Attention
op with kv_source=linear(feature_map="key_softmax") (non-causal linear attention)."""
from __future__ import annotations

from ...graph import Node, Value
from ...ops import Attention, AttentionSpec, SpecError
from ...ops.attention_features.linear import LinearAttn
from .common import Emitter, MatchContext, NotAttention, need
from .talking_heads import key_softmax_factorized


def lift_factorized(ctx: MatchContext, em: Emitter, sm: Node) -> tuple[Node, list[tuple[Value, Value]]] | None:
    """The Attention node for a CoaT-style site at softmax `sm` and (old, new) outputs to rewire; None when `sm`
    is not a key softmax feeding softmax(k)ᵀ·V."""
    k = sm.inputs[0]
    if k.rank != 4 or sm.op.axis % 4 != 2 or not key_softmax_factorized(ctx, sm):
        return None
    t = ctx.users_of(sm.outputs[0])[0][0]
    need(tuple(t.op.perm) == (0, 1, 3, 2), f"the key softmax is transposed with {tuple(t.op.perm)}, not (0, 1, 3, 2)")
    factor = ctx.users_of(t.outputs[0])[0][0]
    v = factor.inputs[1]
    uses = ctx.users_of(factor.outputs[0])
    need(len(uses) == 1 and uses[0][0].op.op_name == "MatMul" and uses[0][1] == 1,
         f"softmax(k)ᵀ·V '{factor.name}' is not read once as the right operand of q·(softmax(k)ᵀ·V)")
    qf = uses[0][0]
    q, out = qf.inputs[0], qf.outputs[0]
    for name, x in (("query", q), ("value", v)):
        need(x.rank == 4 and tuple(x.shape[:2]) == tuple(k.shape[:2]),
             f"the {name} {tuple(x.shape)} is not (B, H, S, D) with the key's batch and heads {tuple(k.shape[:2])}")
    need(q.shape[2] == k.shape[2], f"query length {q.shape[2]} differs from key length {k.shape[2]}")
    scale = 1.0
    uses = ctx.users_of(out)
    if len(uses) == 1 and uses[0][0].op.op_name == "Binary" and uses[0][0].op.fn == "mul":
        factor_value = ctx.scalar(uses[0][0].inputs[1 - uses[0][1]])
        if factor_value is not None and factor_value > 0:
            scale, out = float(factor_value), uses[0][0].outputs[0]
    try:
        spec = AttentionSpec(num_heads=int(k.shape[1]), num_kv_heads=int(k.shape[1]), head_dim=int(k.shape[3]),
                             v_head_dim=int(v.shape[3]), scale=scale,
                             kv_source=LinearAttn("linear", "key_softmax", False))
    except (SpecError, TypeError) as e:
        raise NotAttention(f"the factorized attention does not form a valid spec: {e}") from e
    dtype = out.dtype
    att = em.graph.add(Attention(spec=spec), [em.cast(q, dtype), em.cast(k, dtype), em.cast(v, dtype)],
                       name=f"{em.hint}_attention", source=sm.source)[0]
    return att.producer, [(out, em.cast(att, out.dtype))]
