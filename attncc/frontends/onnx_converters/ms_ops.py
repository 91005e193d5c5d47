"""com.microsoft contrib attention ops (onnxruntime) -> IR Attention.

- MultiHeadAttention: separate 3-D q/k/v (or 4-D BNSH k/v), optional packed bias, key_padding_mask
  (B, total) as an additive (1 - m) * mask_filter_value bias (ORT's semantics), attention_bias, past/present,
  unidirectional = causal aligned bottom-right.
- Attention: the fused-projection form (input @ weights + bias split into q, k, v), mask_index (B,) lengths,
  (B, total) 0/1 or (B, S, total) masks, past/present stacked as (2, B, N, T, H).
- GroupQueryAttention: causal GQA with optional rotary (cos/sin caches), softcap, local window, and a
  concatenating KV cache (past holds exactly the earlier tokens). Shared past/present buffers and
  smooth softmax / head sinks are rejected: they are not the IR's semantics.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.ops import Attention, AttentionSpec, Binary, Concat, Linear, MaskSpec, Reshape, RopeSpec, Rotary, Slice
from .attention_layout import merge_heads, split_heads
from .context import ImportContext
from .registry import converter
from .rotary import rope_tables


def _additive_from_keep01(ctx: ImportContext, mask, filter_value: float, dtype: str):
    """An int/bool 0-1 keep-mask -> additive bias (1 - m) * mask_filter_value, as onnxruntime computes it."""
    m = ctx.cast(mask, dtype)
    one = ctx.constant(np.array(1.0), dtype=dtype, name="one")
    fill = ctx.constant(np.array(filter_value), dtype=dtype, name="mask_filter_value")
    return ctx.add1(Binary("mul"), [ctx.add1(Binary("sub"), [one, m]), fill], name="padding_bias")


def _add_bias(ctx: ImportContext, a, b):
    if a is None:
        return b
    return b if b is None else ctx.add1(Binary("add"), [a, b], name="attention_bias")


def _build(ctx: ImportContext, q, k, v, heads: int, kv_heads: int, scale, causal: bool, bias, past_k, past_v,
           softcap=None, window_left=None, kv_lengths=None, rope=None, rope_tables_=None):
    """One Attention op on bhsd q/k/v; returns (output bhsd, present_k, present_v)."""
    mask = MaskSpec(causal=causal, alignment="bottom_right", window_left=window_left,
                    input="additive" if bias is not None else "none", kv_lengths=kv_lengths is not None)
    spec = AttentionSpec(num_heads=heads, num_kv_heads=kv_heads, head_dim=q.shape[3], v_head_dim=v.shape[3],
                         scale=float(scale) if scale else None, softcap=softcap, mask=mask,
                         kv_cache=past_k is not None, rope=rope)
    named = {"query": q, "key": k, "value": v, "mask": bias, "kv_lengths": kv_lengths, "past_key": past_k,
             "past_value": past_v}
    if rope_tables_ is not None:
        named["rope_cos"], named["rope_sin"] = rope_tables_
    outs = ctx.add(Attention(spec=spec), [named[n] for n in spec.input_names()])
    if past_k is not None:
        return outs[0], outs[1], outs[2]
    if rope is not None:  # present_key holds the rotated keys (ORT), which the op only returns with a cache
        k = ctx.add1(Rotary(rope.style, rope.rotary_dim), [k, *rope_tables_], name="present_key")
    return outs[0], k, v


@converter("com.microsoft", "MultiHeadAttention")
def convert_ms_mha(ctx: ImportContext, node):
    heads = int(ctx.attr(node, "num_heads"))
    q, k, v = (ctx.input(node, i) for i in range(3))
    ctx.check(k is not None and v is not None and q.rank == 3,
              "packed QKV / packed KV inputs are not supported; pass separate query, key and value")
    bias = ctx.input(node, 3)
    if bias is not None:  # packed (Dq + Dk + Dv) projection bias
        dq, dk = q.shape[2], k.shape[2] if k.rank == 3 else None
        ctx.check(k.rank == 3 and isinstance(dq, int) and isinstance(dk, int), "bias needs 3-D key/value")
        parts = [ctx.add1(Slice(0, a, b), [bias]) for a, b in ((0, dq), (dq, dq + dk), (dq + dk, None))]
        q, k, v = (ctx.add1(Binary("add"), [x, p]) for x, p in zip((q, k, v), parts))
    qb = split_heads(ctx, q, heads, "query")
    kb = split_heads(ctx, k, heads, "key") if k.rank == 3 else k
    vb = split_heads(ctx, v, heads, "value") if v.rank == 3 else v
    pad, attn_bias, past_k, past_v = (ctx.input(node, i) for i in (4, 5, 6, 7))
    ctx.check(not ctx.has_input(node, 8) and not ctx.has_input(node, 9),
              "past_sequence_length / cache_indirection (beam-search decoding) are not supported")
    total = kb.shape[2] if past_k is None else D.add(past_k.shape[2], kb.shape[2])
    add_mask = attn_bias if attn_bias is None else ctx.cast(attn_bias, q.dtype)
    if pad is not None:
        ctx.check(pad.rank == 2, f"key_padding_mask must be (batch, total_sequence_length), got {pad.type}")
        b = pad.shape[0]
        pb = _additive_from_keep01(ctx, pad, float(ctx.attr(node, "mask_filter_value", -10000.0)), q.dtype)
        add_mask = _add_bias(ctx, add_mask, ctx.add1(Reshape((b, 1, 1, total)), [pb]))
    y, pk, pv = _build(ctx, qb, kb, vb, heads, heads, ctx.attr(node, "scale"),
                       bool(ctx.attr(node, "unidirectional", 0)), add_mask, past_k, past_v)
    return [merge_heads(ctx, y), pk, pv]


@converter("com.microsoft", "Attention")
def convert_ms_attention(ctx: ImportContext, node):
    """Fused-projection attention: x @ W + b -> q, k, v (sizes from qkv_hidden_sizes or equal thirds)."""
    heads = int(ctx.attr(node, "num_heads"))
    ctx.check(not ctx.attr(node, "do_rotary", 0), "attribute do_rotary=1 is not supported")
    ctx.check(not ctx.attr(node, "past_present_share_buffer", 0), "past_present_share_buffer=1 is not supported")
    x, w, b, mask_index, past = (ctx.input(node, i) for i in range(5))
    attn_bias = ctx.input(node, 5)
    ctx.check(not ctx.has_input(node, 6), "past_sequence_length is not supported")
    sizes = ctx.attr(node, "qkv_hidden_sizes") or [w.shape[1] // 3] * 3
    proj = ctx.add1(Linear(has_bias=b is not None), [x, w] + ([b] if b is not None else []), name="qkv")
    offs = np.cumsum([0] + list(sizes)).tolist()
    q, k, v = (ctx.add1(Slice(2, offs[i], offs[i + 1]), [proj], name=n) for i, n in enumerate(("q", "k", "v")))
    qb, kb, vb = split_heads(ctx, q, heads, "query"), split_heads(ctx, k, heads, "key"), split_heads(ctx, v, heads, "value")
    past_k = past_v = None
    if past is not None:
        _, bsz, n, p, h = past.shape
        past_k = ctx.add1(Reshape((bsz, n, p, h)), [ctx.add1(Slice(0, 0, 1), [past])], name="past_key")
        past_v = ctx.add1(Reshape((bsz, n, p, h)), [ctx.add1(Slice(0, 1, 2), [past])], name="past_value")
    total = kb.shape[2] if past is None else D.add(past_k.shape[2], kb.shape[2])
    add_mask = None if attn_bias is None else ctx.cast(attn_bias, x.dtype)
    lengths = None
    if mask_index is not None:
        filt = float(ctx.attr(node, "mask_filter_value", -10000.0))
        bsz = x.shape[0]
        if mask_index.rank == 1:
            ctx.check(D.equal(mask_index.shape[0], bsz), "mask_index of shape (2*batch) (left padding) is not supported")
            lengths = mask_index
        elif mask_index.rank in (2, 3):
            pb = _additive_from_keep01(ctx, mask_index, filt, x.dtype)
            shape = (bsz, 1, 1, total) if mask_index.rank == 2 else (bsz, 1, mask_index.shape[1], total)
            add_mask = _add_bias(ctx, add_mask, ctx.add1(Reshape(shape), [pb]))
        else:
            ctx.fail(f"mask_index of rank {mask_index.rank} is not supported (only (B,), (B, total), (B, S, total))")
    y, pk, pv = _build(ctx, qb, kb, vb, heads, heads, ctx.attr(node, "scale"), bool(ctx.attr(node, "unidirectional", 0)),
                       add_mask, past_k, past_v, kv_lengths=lengths)
    present = None
    if len(node.output) > 1 and node.output[1]:
        bsz, n, t, h = pk.shape
        stack = [ctx.add1(Reshape((1, bsz, n, t, h)), [p]) for p in (pk, pv)]
        present = ctx.add1(Concat(0), stack, name="present")
    return [merge_heads(ctx, y), present]


@converter("com.microsoft", "GroupQueryAttention")
def convert_ms_gqa(ctx: ImportContext, node):
    heads, kv_heads = int(ctx.attr(node, "num_heads")), int(ctx.attr(node, "kv_num_heads"))
    for name in ("smooth_softmax", "qk_output"):
        ctx.check(not ctx.attr(node, name, 0), f"attribute {name}={ctx.attr(node, name)} is not supported")
    q, k, v, past_k, past_v = (ctx.input(node, i) for i in range(5))
    ctx.check(k is not None and v is not None, "packed QKV (key and value absent) is not supported")
    ctx.check(not ctx.has_input(node, 11), "head_sink is not supported")
    qb, kb, vb = split_heads(ctx, q, heads, "query"), split_heads(ctx, k, kv_heads, "key"), split_heads(ctx, v, kv_heads, "value")
    seq = qb.shape[2]
    past_len = 0 if past_k is None else past_k.shape[2]
    total = ctx.const(node, 6)
    if total is not None:  # a shared past/present buffer would make total smaller than past + new
        ctx.check(D.equal(int(np.asarray(total).reshape(-1)[0]), D.add(past_len, seq)),
                  f"total_sequence_length {int(np.asarray(total).reshape(-1)[0])} != past length {past_len} + "
                  f"new tokens {seq}: shared past/present buffers are not supported (past must hold exactly the earlier tokens)")
    seqlens = ctx.input(node, 5)  # per batch: valid total length - 1
    lengths = None
    if seqlens is not None and past_k is None:  # a right-padded prompt: keys past each row's length are masked
        one = ctx.constant(np.array(1), dtype=seqlens.dtype, name="one")
        lengths = ctx.add1(Binary("add"), [seqlens, one], name="kv_lengths")
    ctx.graph.diagnostics.append({"kind": "note", "node": node.name or node.output[0], "message":
                                  "GroupQueryAttention imported with a concatenating KV cache: past_key must hold "
                                  "exactly the earlier tokens of every batch row (no per-row padding in the past)"})
    rope = tables = None
    if ctx.attr(node, "do_rotary", 0):
        cos_cache, sin_cache, pos = ctx.input(node, 7), ctx.input(node, 8), ctx.input(node, 9)
        ctx.check(cos_cache is not None and sin_cache is not None, "do_rotary=1 needs cos_cache and sin_cache")
        if pos is None:  # positions past_len .. past_len + S - 1
            tables = [ctx.add1(Reshape((1, seq, c.shape[1])), [ctx.add1(Slice(0, past_len, D.add(past_len, seq)), [c])])
                      for c in (cos_cache, sin_cache)]
        else:
            tables = [rope_tables(ctx, c, pos, seq, n) for c, n in ((cos_cache, "cos_cache"), (sin_cache, "sin_cache"))]
        rotary_dim = 2 * cos_cache.shape[1]
        rope = RopeSpec("interleaved" if ctx.attr(node, "rotary_interleaved", 0) else "rotate_half", rotary_dim)
        tables = [ctx.cast(t, q.dtype) for t in tables]
    window = int(ctx.attr(node, "local_window_size", -1))
    bias = ctx.input(node, 10)
    y, pk, pv = _build(ctx, qb, kb, vb, heads, kv_heads, ctx.attr(node, "scale"), True,
                       None if bias is None else ctx.cast(bias, q.dtype), past_k, past_v,
                       softcap=float(ctx.attr(node, "softcap", 0.0)) or None,
                       window_left=window - 1 if window > 0 else None, kv_lengths=lengths, rope=rope, rope_tables_=tables)
    return [merge_heads(ctx, y), pk, pv]
