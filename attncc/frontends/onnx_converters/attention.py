"""ONNX `Attention` (opset 23, 24 adds nonpad_kv_seqlen, 25 adds left/right windows) -> one IR Attention.

Semantics follow onnx/reference/ops/op_attention.py:
- 3-D inputs (B, S, H*D) are split into heads with q_num_heads / kv_num_heads; 4-D are (B, H, S, D).
- softcap is applied to the scaled scores BEFORE the mask bias (softcap_order "before_mask").
- is_causal and the windows are aligned by an offset: query i sits at past_len + i with an internal
  cache (bottom-right when Sq equals the new keys' length), at i without a cache (top-left), and at
  nonpad_kv_seqlen[b] - Sq + i with an external cache. Offsets that are not a MaskSpec alignment
  become an explicit keep-mask.
- A mask shorter than the keys is padded with "masked" (False / -inf).
- GQA reads kv head h // (Hq / Hkv), as the reference's np.repeat does.
"""
from __future__ import annotations

from ...ir.ops import Attention, AttentionSpec, MaskSpec
from ...ir import dims as D
from .attention_layout import (combine_masks, fixed_offset_keep_mask, merge_heads, offset_keep_mask, pad_mask_keys,
                               split_heads)
from .attention_qk import qk_output
from .context import ImportContext
from .registry import converter


def _heads(ctx: ImportContext, node, q, k, v):
    """Return (q, k, v) in (B, H, S, D) and whether the inputs were 3-D."""
    if q.rank == 3:
        hq, hkv = ctx.attr(node, "q_num_heads"), ctx.attr(node, "kv_num_heads")
        ctx.check(bool(hq) and bool(hkv), "3-D inputs need attributes q_num_heads and kv_num_heads")
        return split_heads(ctx, q, hq, "query"), split_heads(ctx, k, hkv, "key"), split_heads(ctx, v, hkv, "value"), True
    ctx.check(q.rank == 4 and k.rank == 4 and v.rank == 4,
              f"Q/K/V must all be rank 3 or all rank 4, got {q.type}, {k.type}, {v.type}")
    return q, k, v, False


def convert_attention(ctx: ImportContext, node, windows: bool = False):
    """Convert one ONNX Attention node; see the module docstring for the alignment rules."""
    q, k, v, was_3d = _heads(ctx, node, ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2))
    hq, hkv = q.shape[1], k.shape[1]
    ctx.check(isinstance(hq, int) and isinstance(hkv, int), f"head counts must be static, got {hq} and {hkv}")
    ctx.check(hq % hkv == 0, f"q heads ({hq}) must be a multiple of kv heads ({hkv})")
    mask, past_k, past_v = ctx.input(node, 3), ctx.input(node, 4), ctx.input(node, 5)
    lengths = ctx.input(node, 6)
    ctx.check((past_k is None) == (past_v is None), "past_key and past_value must be given together")
    ctx.check(lengths is None or past_k is None, "nonpad_kv_seqlen cannot be combined with past_key/past_value")
    causal = bool(ctx.attr(node, "is_causal", 0))
    left = ctx.attr(node, "left_window_size", -1) if windows else -1
    right = ctx.attr(node, "right_window_size", -1) if windows else -1
    left, right = (None if left < 0 else left), (None if right < 0 else right)
    softcap = float(ctx.attr(node, "softcap", 0.0)) or None
    scale = ctx.attr(node, "scale")
    q_len = q.shape[2]
    kv_total = k.shape[2] if past_k is None else _sum(past_k.shape[2], k.shape[2])

    mask_kind = "none"
    if mask is not None:
        if mask.dtype != "bool" and mask.dtype != q.dtype:
            mask = ctx.cast(mask, q.dtype)
        mask = pad_mask_keys(ctx, mask, kv_total)
    if lengths is not None and (causal or left is not None or right is not None):
        # per-batch bottom-right offsets: not a MaskSpec alignment, so spell the keep-mask out
        keep = offset_keep_mask(ctx, lengths, q_len, kv_total, causal, left, right)
        mask = combine_masks(ctx, mask, keep, q.dtype)
        causal, left, right = False, None, None
    elif past_k is not None and (causal or left is not None or right is not None) \
            and not D.equal(q_len, k.shape[2]):
        # queries sit at past_len + i, which is bottom-right only when Sq equals the new keys' length
        keep = fixed_offset_keep_mask(ctx, q_len, kv_total, past_k.shape[2], causal, left, right)
        mask = combine_masks(ctx, mask, keep, q.dtype)
        causal, left, right = False, None, None
    if mask is not None:
        mask_kind = "bool" if mask.dtype == "bool" else "additive"
    mask_spec = MaskSpec(causal=causal, alignment="bottom_right" if past_k is not None else "top_left",
                         window_left=left, window_right=right, input=mask_kind, kv_lengths=lengths is not None)
    spec = AttentionSpec(num_heads=hq, num_kv_heads=hkv, head_dim=_int(ctx, q.shape[3], "head size"),
                         v_head_dim=_int(ctx, v.shape[3], "value head size"),
                         scale=float(scale) if scale is not None else None, softcap=softcap,
                         softcap_order="before_mask", mask=mask_spec, kv_cache=past_k is not None)
    named = {"query": q, "key": k, "value": v, "mask": mask, "kv_lengths": lengths,
             "past_key": past_k, "past_value": past_v}
    inputs = [named[n] for n in spec.input_names()]
    outs = ctx.add(Attention(spec=spec), inputs)
    y = merge_heads(ctx, outs[0]) if was_3d else outs[0]
    present_k, present_v = (outs[1], outs[2]) if spec.kv_cache else (k, v)
    qk = None
    if len(node.output) > 3 and node.output[3]:
        qk = qk_output(ctx, spec, named, int(ctx.attr(node, "qk_matmul_output_mode", 0)))
    return [y, present_k, present_v, qk]


def _sum(a, b):
    return D.add(a, b)


def _int(ctx: ImportContext, d, what: str) -> int:
    ctx.check(isinstance(d, int), f"{what} must be static, got {d}")
    return d


@converter("", "Attention", since=23)
def convert_attention_23(ctx: ImportContext, node):
    """Attention-23 and -24 (24 adds the nonpad_kv_seqlen input, read as input 6)."""
    return convert_attention(ctx, node, windows=False)


@converter("", "Attention", since=25)
def convert_attention_25(ctx: ImportContext, node):
    """Attention-25: adds left_window_size / right_window_size (sliding windows, -1 = unbounded)."""
    return convert_attention(ctx, node, windows=True)
