"""scaled_dot_product_attention (and its flash / efficient / cuDNN / CPU-flash overloads) -> Attention.

Mapping (exact, never lossy):
- scale: torch's scale, or its default 1/sqrt(q.size(-1)); always stored explicitly.
- is_causal: torch aligns the causal diagonal top-left (query i sees keys j <= i).
- enable_gqa / differing head counts: num_kv_heads = key heads. Without enable_gqa, heads and batch
  broadcast as in torch's matmuls: one key/value head serves all query heads (num_kv_heads = 1).
- attn_mask: bool = keep-mask (True attends), float = additive bias.
- dropout_p must be 0 (dropout is random; eval mode has none).
Only output 0 exists in the IR; the logsumexp / debug outputs of the fused overloads are
marked unavailable and fail clearly if a graph uses them.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir import dims as D
from ...ir.ops import Attention, AttentionSpec, Expand, MaskSpec, Reshape
from ...ir.ops.attention_spec import SpecError
from . import register_torch_converter

_FUSED_OUTPUTS = {
    "aten._scaled_dot_product_flash_attention_for_cpu.default": 2,
    "aten._scaled_dot_product_flash_attention.default": 9,
    "aten._scaled_dot_product_efficient_attention.default": 4,
    "aten._scaled_dot_product_cudnn_attention.default": 9,
}

SDPA_OVERLOADS = ("aten.scaled_dot_product_attention.default", *_FUSED_OUTPUTS)


def _static(ctx, d, what):
    if not isinstance(d, int):
        raise ctx.error(f"{what} must be static for attention, got symbolic {d}")
    return d


def position_mask_of_constant(keep, q_len, kv_len) -> MaskSpec | None:
    """The causal/sliding-window MaskSpec whose keep pattern equals the constant bool `keep`, if any.

    `keep` must be the same for every batch entry and head. Checked elementwise against the
    reference semantics, so a match is exact; top-left alignment is preferred when both fit.
    """
    if keep is None or not isinstance(q_len, int) or not isinstance(kv_len, int) or keep.ndim < 2:
        return None
    if keep.shape[-2:] != (q_len, kv_len):
        return None
    first = keep.reshape(-1, q_len, kv_len)[0]
    if not (keep == first).all():  # differs across batch or heads: not a position pattern
        return None
    from ...ir.interpreter.attention_ref import position_keep_mask

    keep = first.astype(bool)
    if not keep.any(axis=1).all():
        return None
    for alignment in ("top_left", "bottom_right"):
        offset = 0 if alignment == "top_left" else kv_len - q_len
        pos = np.arange(q_len) + offset
        first = keep.argmax(axis=1)
        left = int((pos - first).max())
        for window_left in (None, left) if left >= 0 else ():
            spec = MaskSpec(causal=True, alignment=alignment, window_left=window_left)
            if np.array_equal(position_keep_mask(spec, q_len, kv_len), keep):
                return spec
    return None


def _broadcast_heads(ctx, q, k, v):
    """Without enable_gqa, torch broadcasts the (batch, heads) axes of q, k and v like batched matmuls do:
    a key/value with one head serves every query head (MQA, kept as num_kv_heads=1), a query with one
    head is expanded to the key's heads. Returns (q, k, v, heads, kv_heads) on bhsd inputs."""
    shapes = [tuple(ctx.shape_of(t)) for t in (q, k, v)]
    counts = [_static(ctx, s[1], "head count") for s in shapes]
    n = max(counts)
    if any(c not in (1, n) for c in counts):
        raise ctx.error(f"query, key and value have {counts[0]}, {counts[1]} and {counts[2]} heads, which do not "
                        "broadcast (each must be 1 or the largest); pass enable_gqa=True for grouped-query attention")
    batch = shapes[0][0]
    for s in shapes[1:]:
        if s[0] != 1 and not D.equal(s[0], batch):
            batch = s[0] if batch == 1 else batch
    out = []
    for t, s, c, name in zip((q, k, v), shapes, counts, ("q", "k", "v")):
        # the query takes every head; key and value keep one head when both have one (MQA)
        want_heads = n if name == "q" or counts[1] != counts[2] else c
        target = (batch, want_heads, s[2], s[3])
        if any(not D.equal(a, b) for a, b in zip(target, s)):
            t = ctx.emit(Expand(target), [t], name=f"{ctx.node.name}_{name}_broadcast")
        out.append(t)
    kv_heads = ctx.shape_of(out[1])[1]
    return out[0], out[1], out[2], n, kv_heads


@register_torch_converter(*SDPA_OVERLOADS)
def _sdpa(ctx, args):
    q, k, v = args["query"], args["key"], args["value"]
    mask = args.get("attn_mask", args.get("attn_bias"))
    dropout_p = float(args.get("dropout_p", 0.0))
    if dropout_p != 0.0:
        raise ctx.error(f"scaled_dot_product_attention with dropout_p={dropout_p}: attention dropout is random "
                        "and only valid in training; call model.eval() / pass dropout_p=0 when not training")
    is_causal = bool(args.get("is_causal", False))
    if is_causal and mask is not None:
        raise ctx.error("scaled_dot_product_attention got both attn_mask and is_causal=True; torch rejects this too")
    qs, ks, vs = ctx.shape_of(q), ctx.shape_of(k), ctx.shape_of(v)
    rank = len(qs)
    if rank < 3 or len(ks) != rank or len(vs) != rank:
        raise ctx.error(f"attention inputs must share rank >= 3, got query {qs}, key {ks}, value {vs}")
    head_dim = _static(ctx, qs[-1], "query head dim")
    scale = args.get("scale")
    scale = 1.0 / math.sqrt(head_dim) if scale is None else float(scale)
    if rank == 3:  # (N, S, D): one head per batch entry
        q, k, v = (ctx.emit(Reshape((s[0], 1, s[1], s[2])), [t], name=f"{ctx.node.name}_{n}4d")
                   for t, s, n in ((q, qs, "q"), (k, ks, "k"), (v, vs, "v")))
        heads, kv_heads = 1, 1
    elif rank == 4:
        heads, kv_heads = _static(ctx, qs[1], "query heads"), _static(ctx, ks[1], "key heads")
    else:  # (B, ..., H, S, D): fold the extra leading dims into batch
        q, k, v = (ctx.emit(Reshape((D.product(s[:-3]), s[-3], s[-2], s[-1])), [t], name=f"{ctx.node.name}_{n}4d")
                   for t, s, n in ((q, qs, "q"), (k, ks, "k"), (v, vs, "v")))
        heads, kv_heads = _static(ctx, qs[-3], "query heads"), _static(ctx, ks[-3], "key heads")
    if rank >= 4 and not args.get("enable_gqa", False) and "flash" not in str(ctx.node.target):
        q, k, v, heads, kv_heads = _broadcast_heads(ctx, q, k, v)
    mask_kind, position = "none", None
    if mask is not None and ctx.dtype_of(mask) == "bool":
        position = position_mask_of_constant(ctx.const_array(mask), qs[-2], ks[-2])
        if position is not None:  # a constant causal / sliding-window keep-mask: the structured form is exact
            mask = None
    if mask is not None:
        mask_kind = "bool" if ctx.dtype_of(mask) == "bool" else "additive"
        mrank = ctx.rank_of(mask)
        if rank != 4 and mrank > 2:
            raise ctx.error(f"attention mask of rank {mrank} with rank-{rank} inputs; supported: rank <= 2 masks "
                            "(or rank-4 inputs)")
        if mask_kind == "additive":
            mask = ctx.value(mask, ctx.dtype_of(q))
    try:
        spec = AttentionSpec(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
                             v_head_dim=_static(ctx, vs[-1], "value head dim"), scale=scale,
                             mask=position or MaskSpec(causal=is_causal, alignment="top_left", input=mask_kind))
    except SpecError as e:
        raise ctx.error(f"cannot describe this attention: {e}") from e
    out = ctx.emit(Attention(spec=spec), [q, k, v] + ([mask] if mask is not None else []))
    if rank != 4:
        out = ctx.emit(Reshape(tuple(qs[:-1]) + (vs[-1],)), [out], name=ctx.node.name + "_out")
    n_out = _FUSED_OUTPUTS.get(str(ctx.node.target))
    return out if n_out is None else (out,) + (None,) * (n_out - 1)
