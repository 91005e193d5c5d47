"""com.microsoft fused elementwise / normalization ops (what onnxruntime's transformer optimizer writes),
decomposed into existing IR ops so every backend that runs the primitives runs them too.

- SkipLayerNormalization: s = input + skip (+ bias); LayerNorm(s, gamma, beta); optional outputs mean,
  inv_std_var (both (..., 1), over the last axis) and input_skip_bias_sum (s).
- SkipSimplifiedLayerNormalization: the same with RMSNorm; inv_std_var = 1 / sqrt(mean(s^2) + eps).
  Its `mean` output is not defined for an RMS norm and is not produced.
- EmbedLayerNormalization: word[ids] + position[pos] (+ segment[segment_ids]) -> LayerNorm; mask_index
  is the per-row count of mask == 1 (int32), zeros without a mask (onnxruntime's CPU kernel).
- Gelu (erf), FastGelu (tanh approximation, optional bias), BiasGelu (erf gelu of input + bias),
  QuickGelu (x * sigmoid(alpha * x)).
"""
from __future__ import annotations

import numpy as np

from ...ir.ops import Activation, Binary, Cast, Expand, Gather, LayerNorm, Reduce, Reshape, RMSNorm, Slice, Unary
from .context import ImportContext
from .math_ops import _norm_weight
from .registry import converter

QUICK_GELU_ALPHA = 1.702  # the constant the IR's quick_gelu activation bakes in


def _add(ctx: ImportContext, a, b, name: str | None = None):
    return a if b is None else ctx.add1(Binary("add"), [a, b], name=name)


def _wants(node, i: int) -> bool:
    return len(node.output) > i and node.output[i] != ""


def _scalar(ctx: ImportContext, value: float, dtype: str, name: str):
    return ctx.constant(np.array(value), dtype=dtype, name=name)


def _row_stats(ctx: ImportContext, s, eps: float, centered: bool):
    """(mean, 1 / sqrt(var + eps)) over the last axis, keepdims; var is mean(s^2) when not centered (RMS)."""
    mean = ctx.add1(Reduce("mean", (-1,), True), [s], name="mean")
    d = ctx.add1(Binary("sub"), [s, mean]) if centered else s
    var = ctx.add1(Reduce("mean", (-1,), True), [ctx.add1(Binary("mul"), [d, d])], name="var")
    inv = ctx.add1(Unary("rsqrt"), [ctx.add1(Binary("add"), [var, _scalar(ctx, eps, s.dtype, "epsilon")])],
                   name="inv_std_var")
    return mean, inv


def _skip_sum(ctx: ImportContext, node, bias_index: int):
    x, skip = ctx.input(node, 0), ctx.input(node, 1)
    ctx.check(skip.rank <= x.rank, f"skip {skip.type} has a higher rank than input {x.type}")
    bias = _norm_weight(ctx, node, bias_index, x.shape[-1])
    return _add(ctx, _add(ctx, x, skip), bias, name="input_skip_bias_sum")


@converter("com.microsoft", "SkipLayerNormalization")
def convert_skip_layernorm(ctx: ImportContext, node):
    eps = float(ctx.attr(node, "epsilon", 1e-12))
    s = _skip_sum(ctx, node, 4)
    gamma, beta = _norm_weight(ctx, node, 2, s.shape[-1]), _norm_weight(ctx, node, 3, s.shape[-1])
    ctx.check(gamma is not None, "input 2 (gamma) is required")
    y = ctx.add1(LayerNorm(eps=eps, has_weight=True, has_bias=beta is not None), [s, gamma] + ([beta] if beta else []))
    mean = inv = None
    if _wants(node, 1) or _wants(node, 2):
        mean, inv = _row_stats(ctx, s, eps, centered=True)
    return [y, mean, inv, s]


@converter("com.microsoft", "SkipSimplifiedLayerNormalization")
def convert_skip_simplified_layernorm(ctx: ImportContext, node):
    eps = float(ctx.attr(node, "epsilon", 1e-12))
    s = _skip_sum(ctx, node, 3)
    gamma = _norm_weight(ctx, node, 2, s.shape[-1])
    ctx.check(gamma is not None, "input 2 (gamma) is required")
    y = ctx.add1(RMSNorm(eps=eps, has_weight=True), [s, gamma])
    inv = _row_stats(ctx, s, eps, centered=False)[1] if _wants(node, 2) else None
    return [y, None, inv, s]


@converter("com.microsoft", "EmbedLayerNormalization")
def convert_embed_layernorm(ctx: ImportContext, node):
    ids, segment_ids = ctx.input(node, 0), ctx.input(node, 1)
    word, position, segment = ctx.input(node, 2), ctx.input(node, 3), ctx.input(node, 4)
    gamma, beta, mask, position_ids = ctx.input(node, 5), ctx.input(node, 6), ctx.input(node, 7), ctx.input(node, 8)
    ctx.check(ids.rank == 2, f"input_ids must be (batch, sequence), got {ids.type}")
    ctx.check((segment_ids is None) == (segment is None), "segment_ids and segment_embedding must come together")
    batch, seq = ids.shape
    emb = ctx.add1(Gather(0), [word, ids], name="word_embedding")
    if position_ids is None:  # positions 0 .. S-1 for every row
        pos = ctx.add1(Reshape((1, seq, position.shape[1])), [ctx.add1(Slice(0, 0, seq), [position])],
                       name="position_embedding")
    else:
        pos = ctx.add1(Gather(0), [position, position_ids], name="position_embedding")
    emb = ctx.add1(Binary("add"), [emb, pos])
    if segment is not None:
        emb = ctx.add1(Binary("add"), [emb, ctx.add1(Gather(0), [segment, segment_ids], name="segment_embedding")])
    eps = float(ctx.attr(node, "epsilon", 1e-12))
    y = ctx.add1(LayerNorm(eps=eps, has_weight=True, has_bias=beta is not None), [emb, gamma] + ([beta] if beta else []))
    if mask is not None:
        ones = ctx.add1(Binary("eq"), [mask, ctx.constant(np.array(1), dtype=mask.dtype, name="one")])
        mask_index = ctx.add1(Reduce("sum", (1,)), [ctx.add1(Cast("int32"), [ones])], name="mask_index")
    else:
        mask_index = ctx.add1(Expand((batch,)), [ctx.constant(np.zeros(1, np.int32), name="zero")], name="mask_index")
    return [y, mask_index, emb]


@converter("com.microsoft", "Gelu")
def convert_ms_gelu(ctx: ImportContext, node):
    return [ctx.add1(Activation("gelu"), [ctx.input(node, 0)])]


@converter("com.microsoft", "BiasGelu")
def convert_bias_gelu(ctx: ImportContext, node):
    return [ctx.add1(Activation("gelu"), [_add(ctx, ctx.input(node, 0), ctx.input(node, 1))])]


@converter("com.microsoft", "FastGelu")
def convert_fast_gelu(ctx: ImportContext, node):
    return [ctx.add1(Activation("gelu_tanh"), [_add(ctx, ctx.input(node, 0), ctx.input(node, 1))])]


@converter("com.microsoft", "QuickGelu")
def convert_quick_gelu(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    alpha = float(ctx.attr(node, "alpha", QUICK_GELU_ALPHA))
    if np.float32(alpha) == np.float32(QUICK_GELU_ALPHA):
        return [ctx.add1(Activation("quick_gelu"), [x])]
    gate = ctx.add1(Activation("sigmoid"), [ctx.add1(Binary("mul"), [x, _scalar(ctx, alpha, x.dtype, "alpha")])])
    return [ctx.add1(Binary("mul"), [x, gate])]
