"""ONNX Attention's optional `qk_matmul_output`, spelled out in primitives next to the fused op.

The Attention op yields only Y (and the cache); when a model also reads the attention scores we
compute them from the same spec with MatMul/Softmax so both outputs share one definition of the
variant. Modes: 0 = scaled QKᵀ (softcapped when softcap is set, as in the ONNX reference),
1 = after softcap, 2 = after adding the mask bias, 3 = after softmax.
"""
from __future__ import annotations

import numpy as np

from ...ir import Value
from ...ir.interpreter.attention_ref import position_keep_mask
from ...ir.ops import Activation, AttentionSpec, Binary, Concat, MatMul, Reshape, Softmax, Transpose, Unary, Where
from .attention_layout import repeat_kv
from .context import ImportContext

QK_MODES = {0: "scaled QK^T", 1: "after softcap", 2: "after mask bias", 3: "after softmax"}


def qk_output(ctx: ImportContext, spec: AttentionSpec, named: dict[str, Value], mode: int) -> Value:
    """The qk_matmul_output tensor for `mode`, computed from the spec and the Attention op's inputs."""
    ctx.check(mode in QK_MODES, f"attribute qk_matmul_output_mode={mode} is not one of {sorted(QK_MODES)}")
    q, k = named["query"], named["key"]
    ctx.check(spec.rope is None and spec.layout == "bhsd", "qk_matmul_output with rope or bshd layout")
    if spec.kv_cache:
        k = ctx.add1(Concat(2), [named["past_key"], k], name="qk_keys")
    k = repeat_kv(ctx, k, spec.group_size)
    kt = ctx.add1(Transpose((0, 1, 3, 2)), [k], name="qk_kT")
    scores = ctx.add1(MatMul(), [q, kt], name="qk_scores")
    scores = ctx.add1(Binary("mul"), [scores, ctx.constant(np.array(spec.scale), dtype=q.dtype, name="qk_scale")])
    if spec.softcap:
        cap = ctx.constant(np.array(spec.softcap), dtype=q.dtype, name="softcap")
        t = ctx.add1(Activation("tanh"), [ctx.add1(Binary("div"), [scores, cap])])
        scores = ctx.add1(Binary("mul"), [t, cap], name="qk_softcapped")
    if mode in (0, 1):
        return scores
    biased = ctx.add1(Binary("add"), [scores, _bias(ctx, spec, named, q, k)], name="qk_biased")
    if mode == 2:
        return biased
    return ctx.add1(Softmax(-1), [biased], name="qk_probs")


def _bias(ctx: ImportContext, spec: AttentionSpec, named: dict[str, Value], q: Value, k: Value) -> Value:
    """The additive bias (0 / -inf from keep-masks, plus an additive mask) that the spec implies."""
    q_len, kv_len = q.shape[2], k.shape[2]
    keep = None
    if spec.mask.is_windowed or spec.mask.effective_window_right is not None:
        ctx.check(isinstance(q_len, int) and isinstance(kv_len, int), "qk_matmul_output with symbolic lengths")
        keep = ctx.constant(position_keep_mask(spec.mask, q_len, kv_len), name="position_keep")
    extra = []
    if spec.mask.input == "bool":
        extra.append(named["mask"])
    if spec.mask.kv_lengths:
        lens = ctx.cast(named["kv_lengths"], "int64")
        lens = ctx.add1(Reshape((lens.shape[0], 1, 1, 1)), [lens])
        j = ctx.constant(np.arange(kv_len, dtype=np.int64).reshape(1, 1, 1, kv_len), name="k_index")
        extra.append(ctx.add1(Binary("lt"), [j, lens], name="kv_valid"))
    for m in extra:
        keep = m if keep is None else ctx.add1(Binary("and"), [keep, m])
    zero = ctx.constant(np.array(0.0), dtype=q.dtype, name="zero")
    bias = zero
    if keep is not None:
        neg = ctx.constant(np.array(-np.inf), dtype=q.dtype, name="neg_inf")
        bias = ctx.add1(Where(), [keep, zero, neg], name="keep_bias")
    if spec.mask.input == "additive":
        bias = ctx.add1(Binary("add"), [bias, named["mask"]], name="mask_bias")
    return bias


__all__ = ["qk_output", "QK_MODES", "Unary"]
