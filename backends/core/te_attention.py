"""Generic attention in TE: the reference semantics, used when the flash kernels cannot take a spec.

Materializes the (B, H, Sq, Skv) fp32 score matrix, so it is correct but not fast; the node
that uses it is reported in `Executable.notes`.
"""
from __future__ import annotations

from tvm import te, tirx

from .te_elementwise import load


def _truthy(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """x as a bool condition. A bool is used as is: `bool != False` reaches LLVM as an fcmp on i1, which
    its module verifier rejects (TVM 0.27 picks icmp only for int/uint dtypes)."""
    return x if x.dtype == "bool" else x != tirx.const(0, x.dtype)


def within_window(ok, key_pos, query_pos, left, right, both=tirx.And):
    """`ok` and key_pos in [query_pos - left, query_pos + right] (a None bound is open): the sliding-window /
    causal visibility every attention kernel applies, combined with `both` (the caller's conjunction)."""
    if left is not None:
        ok = both(ok, key_pos >= query_pos - left)
    if right is not None:
        ok = both(ok, key_pos <= query_pos + right)
    return ok


def attention_compute(spec, q: te.Tensor, k: te.Tensor, v: te.Tensor, mask: te.Tensor | None,
                      kv_lengths: te.Tensor | None, out_dtype: str, name: str = "out") -> te.Tensor:
    """softmax(mask(softcap(scale q kᵀ))) v on bhsd tensors (RoPE and the KV cache already applied)."""
    B, H, SQ, D = q.shape
    HKV, SK, DV = k.shape[1], k.shape[2], v.shape[3]
    g = int(H) // int(HKV)
    f32 = "float32"
    m = spec.mask
    offset = SK - SQ if m.alignment == "bottom_right" else 0
    left, right = m.window_left, m.effective_window_right
    full = (B, H, SQ, SK)
    d = te.reduce_axis((0, D), "d")
    raw = te.compute(full, lambda b, h, i, j: te.sum(q[b, h, i, d].astype(f32) * k[b, h // g, j, d].astype(f32), axis=d),
                     name="qk")
    cap = tirx.const(spec.softcap or 1.0, f32)
    alibi = next((mod.max_bias for mod in spec.score_mods if mod.kind == "alibi"), None)
    nh = 1 << (int(H) - 1).bit_length()   # ALiBi's slopes: 2^(-max_bias·k/nh) (attncc.ir alibi_slopes)

    def score(b, h, i, j):
        s = raw[b, h, i, j] * tirx.const(spec.scale, f32)
        if spec.softcap and spec.softcap_order == "before_mask":
            s = cap * te.tanh(s / cap)
        if alibi is not None:   # a kept alibi score mod (Capabilities.kernel_score_mods): slope_h · (j - pos_i)
            kh = h + 1 if nh == int(H) else tirx.Select(h < nh // 2, 2 * h + 2, 2 * (h - nh // 2) + 1)
            slope = tirx.exp2(tirx.const(-float(alibi) / nh, f32) * kh.astype(f32))
            s = s + slope * (j - (i + offset)).astype(f32)
        if m.input == "additive":
            s = s + load(mask, (b, h, i, j), full).astype(f32)
        if spec.softcap and spec.softcap_order == "after_mask":
            s = cap * te.tanh(s / cap)
        pos = i + offset
        keep = within_window(tirx.const(True, "bool"), j, pos, left, right)
        if m.input == "bool":
            keep = tirx.And(keep, _truthy(load(mask, (b, h, i, j), full)))
        if kv_lengths is not None:
            keep = tirx.And(keep, j < kv_lengths[b].astype("int32"))
        return tirx.Select(tirx.And(keep, tirx.isfinite(s)), s, -tirx.max_value(f32))

    scores = te.compute(full, score, name="scores")
    j1 = te.reduce_axis((0, SK), "j1")
    mx = te.compute((B, H, SQ), lambda b, h, i: te.max(scores[b, h, i, j1], axis=j1), name="rowmax")
    neg = -tirx.max_value(f32)
    p = te.compute(full, lambda b, h, i, j: tirx.Select(scores[b, h, i, j] == neg, tirx.const(0, f32),
                                                        te.exp(scores[b, h, i, j] - mx[b, h, i])), name="probs")
    j2 = te.reduce_axis((0, SK), "j2")
    denom = te.compute((B, H, SQ), lambda b, h, i: te.sum(p[b, h, i, j2], axis=j2), name="denom")
    j3 = te.reduce_axis((0, SK), "j3")
    acc = te.compute((B, H, SQ, DV), lambda b, h, i, e: te.sum(p[b, h, i, j3] * v[b, h // g, j3, e].astype(f32), axis=j3),
                     name="pv")
    return te.compute((B, H, SQ, DV), lambda b, h, i, e: tirx.Select(denom[b, h, i] > tirx.const(0, f32),
                                                                     acc[b, h, i, e] / denom[b, h, i],
                                                                     tirx.const(0, f32)).astype(out_dtype), name=name)
