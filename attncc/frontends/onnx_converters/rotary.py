"""RotaryEmbedding: ONNX opset 23 and com.microsoft -> IR Rotary (caches gathered by position ids).

ONNX-23: input (B, H, S, D) or (B, S, H*D) with num_heads; cos/sin caches (max_pos, R/2) indexed by
position_ids (B, S), or already (B, S, R/2) without position_ids; `interleaved` pairs (2i, 2i+1),
otherwise halves; rotary_embedding_dim R (0 = head size) rotates the first R channels only.
com.microsoft: input (B, S, H*D) or (B, H, S, D) (v1 also (B, S, H, D)), position_ids (B, S) or a
scalar start offset, caches (max_pos, R/2).
"""
from __future__ import annotations

import numpy as np

from ...ir import Value
from ...ir.ops import Binary, Gather, Reshape, Rotary, Transpose
from .attention_layout import merge_heads, split_heads
from .context import ImportContext
from .registry import converter


def rope_tables(ctx: ImportContext, cache: Value, position_ids: Value | None, seq_len, what: str) -> Value:
    """cos or sin as (B or 1, S, R/2): gathered by position ids, or the cache rows 0..S-1."""
    if position_ids is None:
        ctx.check(cache.rank == 3, f"{what} must be (batch, seq, rotary_dim/2) without position_ids, got {cache.type}")
        return cache
    ctx.check(cache.rank == 2, f"{what} must be (max_position, rotary_dim/2) with position_ids, got {cache.type}")
    pos = ctx.cast(position_ids, "int64")
    if pos.rank == 0 or (pos.rank == 1 and pos.shape[0] == 1):
        # a start offset (com.microsoft): positions offset .. offset + S - 1 for every batch
        ctx.check(isinstance(seq_len, int), f"a scalar position offset needs a static sequence length, got {seq_len}")
        ramp = ctx.constant(np.arange(seq_len, dtype=np.int64).reshape(1, seq_len), name="positions")
        pos = ctx.add1(Binary("add"), [ctx.add1(Reshape((1, 1)), [pos]), ramp], name="position_ids")
    ctx.check(pos.rank == 2, f"position_ids must be (batch, seq), got {pos.type}")
    return ctx.add1(Gather(0), [cache, pos], name=f"{what}_at_positions")


def apply_rotary(ctx: ImportContext, x_bhsd: Value, cos: Value, sin: Value, interleaved: bool, rotary_dim: int) -> Value:
    """IR Rotary on (B, H, S, D)."""
    head = x_bhsd.shape[3]
    rotary_dim = rotary_dim or head
    ctx.check(isinstance(head, int) and rotary_dim <= head and rotary_dim % 2 == 0,
              f"rotary_embedding_dim {rotary_dim} must be even and <= head size {head}")
    cos, sin = ctx.cast(cos, x_bhsd.dtype), ctx.cast(sin, x_bhsd.dtype)
    return ctx.add1(Rotary("interleaved" if interleaved else "rotate_half", rotary_dim), [x_bhsd, cos, sin])


@converter("", "RotaryEmbedding", since=23)
def convert_rotary_23(ctx: ImportContext, node):
    x, cos_cache, sin_cache, pos = (ctx.input(node, i) for i in range(4))
    interleaved = bool(ctx.attr(node, "interleaved", 0))
    rotary_dim = int(ctx.attr(node, "rotary_embedding_dim", 0))
    heads = ctx.attr(node, "num_heads", 0)
    ctx.check(x.rank != 3 or heads > 0, "3-D input (batch, seq, hidden) needs attribute num_heads")
    return [_rotate(ctx, x, heads, cos_cache, sin_cache, pos, interleaved, rotary_dim)]


@converter("com.microsoft", "RotaryEmbedding")
def convert_ms_rotary(ctx: ImportContext, node):
    """com.microsoft RotaryEmbedding (input, position_ids, cos_cache, sin_cache)."""
    x, pos, cos_cache, sin_cache = (ctx.input(node, i) for i in range(4))
    ctx.check(not ctx.attr(node, "is_packed_batching", 0), "attribute is_packed_batching=1 is not supported")
    scale = float(ctx.attr(node, "scale", 1.0))
    ctx.check(scale == 1.0, f"attribute scale={scale} (position scaling) is not supported")
    interleaved = bool(ctx.attr(node, "interleaved", 0))
    rotary_dim = int(ctx.attr(node, "rotary_embedding_dim", 0))
    heads = int(ctx.attr(node, "num_heads", 0))
    if x.rank == 3:
        if heads == 0:  # the head size is then the full rotary width (cache width * 2)
            half = cos_cache.shape[-1]
            ctx.check(isinstance(half, int) and x.shape[2] % (2 * half) == 0,
                      "3-D input without num_heads needs hidden size divisible by 2 * cache width")
            heads = x.shape[2] // (rotary_dim or 2 * half)
    return [_rotate(ctx, x, heads, cos_cache, sin_cache, pos, interleaved, rotary_dim)]


def _rotate(ctx: ImportContext, x, heads: int, cos_cache, sin_cache, pos, interleaved: bool, rotary_dim: int):
    """Rotate a rank-3 (batch, seq, heads*dim) or rank-4 (batch, heads, seq, dim) input by gathered cos/sin rows."""
    if x.rank == 3:
        xb = split_heads(ctx, x, heads, "rope_input")
    else:
        ctx.check(x.rank == 4, f"input must be rank 3 or 4, got {x.type}")
        xb = x
    seq = xb.shape[2]
    cos, sin = rope_tables(ctx, cos_cache, pos, seq, "cos_cache"), rope_tables(ctx, sin_cache, pos, seq, "sin_cache")
    y = apply_rotary(ctx, xb, cos, sin, interleaved, rotary_dim)
    return merge_heads(ctx, y, "rope") if x.rank == 3 else y


__all__ = ["apply_rotary", "rope_tables", "Transpose"]
