"""Torch math of the score mods, HiLo, head mixing, linear attention and ConvShare (see functional.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .functional import position_keep, sdpa, softmax_rows, variant


def _score_mod_keep(spec, n, q_len, kv_len, device):
    keep = None
    offset = kv_len - q_len if spec.mask.alignment == "bottom_right" else 0
    i = torch.arange(q_len, device=device)[:, None]
    j = torch.arange(kv_len, device=device)[None, :]
    for mod in spec.score_mods:
        if mod.kind == "multi_window":
            dist = (i + offset - j).abs()
            big = kv_len + q_len  # a window no distance reaches = global head
            w = torch.tensor([big if x is None else x for x in mod.windows], device=device)
            m = (dist[None] <= w[:, None, None])[None]
        elif mod.kind == "blocked_local":
            start = i // mod.block_size * mod.block_size
            m = (j >= start - mod.halo) & (j < start + mod.block_size + mod.halo)
        elif mod.kind == "topk_sparse":
            conn = n["connectivity"]
            k = min(mod.top_k, kv_len)
            kth = torch.topk(conn, k, dim=-1).values[..., k - 1:k]
            m = conn >= kth
        elif mod.kind == "block_sparse":
            b = mod.block_size
            bm = n["block_mask"].to(torch.bool)
            m = bm.repeat_interleave(b, -2).repeat_interleave(b, -1)[..., :q_len, :kv_len]
        else:
            continue
        keep = m if keep is None else keep & m
    return keep


@variant("multi_window", "blocked_local", "topk_sparse", "block_sparse", "uniform")
def score_mods(spec, n):
    q, k, v = n["query"], n["key"], n["value"]
    q_len, kv_len = q.shape[2], k.shape[2]
    out = sdpa(spec, q, k, v, keep=_score_mod_keep(spec, n, q_len, kv_len, q.device))
    for mod in spec.score_mods:
        if mod.kind == "uniform":
            g = q.shape[1] // k.shape[1]
            vv = v.repeat_interleave(g, 1) if g > 1 else v
            zeros = torch.zeros(q.shape[0], q.shape[1], q_len, kv_len, dtype=q.dtype, device=q.device)
            uni = softmax_rows(zeros, position_keep(spec.mask, q_len, kv_len, q.device)) @ vv
            out = (1 - mod.weight) * out + mod.weight * uni
    return out


@variant("hilo")
def hilo(spec, n):
    feat = spec.kv_source
    q, k, v = n["query"], n["key"], n["value"]
    (h, w), (wh, ww), nl = feat.image_size, feat.window, feat.local_heads
    parts = []
    if nl:
        t = torch.arange(h * w, device=q.device)
        win = (t // w // wh) * (w // ww) + (t % w) // ww
        parts.append(sdpa(spec, q[:, :nl], k[:, :nl], v[:, :nl], keep=win[:, None] == win[None, :]))
    if nl < spec.num_heads:
        def pool(x):
            B, H, _, D = x.shape
            img = x.reshape(B * H, h, w, D).permute(0, 3, 1, 2)
            return F.avg_pool2d(img, (wh, ww)).permute(0, 2, 3, 1).reshape(B, H, -1, D)

        parts.append(sdpa(spec, q[:, nl:], pool(k[:, nl:]), pool(v[:, nl:])))
    return torch.cat(parts, 1)


@variant("moh")
def moh(spec, n):
    feat = spec.head_mixing
    logits = n["head_logits"]
    routed = logits[..., feat.shared_heads:]
    top = torch.topk(routed, feat.top_k, dim=-1)
    gates = torch.zeros_like(routed).scatter(-1, top.indices, torch.softmax(top.values, -1))
    if feat.routers == "fixed":
        weights = torch.cat([torch.ones_like(logits[..., :feat.shared_heads]), gates], -1)   # (B, S, H)
    elif feat.shared_heads == 0:
        weights = feat.top_k * gates
    else:   # the authors' shared router and shared-vs-routed balancing router
        bal = 2 * torch.softmax(n["balance_logits"], -1)
        shared = feat.shared_heads * torch.softmax(logits[..., :feat.shared_heads], -1)
        weights = torch.cat([bal[..., :1] * shared, bal[..., 1:] * feat.top_k * gates], -1)
    return sdpa(spec, n["query"], n["key"], n["value"]) * weights.transpose(1, 2)[..., None]


@variant("knocking_heads")
def knocking_heads(spec, n):
    x = {"q": n["query"], "k": n["key"], "v": n["value"]}
    for t in spec.head_mixing.targets:
        x[t] = torch.einsum("hj,bjsd->bhsd", n[f"knock_{t}"], x[t])
    return sdpa(spec, x["q"], x["k"], x["v"])


@variant("chai")
def chai(spec, n):
    reps = list(spec.head_mixing.representatives)
    q, k, v = n["query"], n["key"], n["value"]
    scores = spec.scale * (q[:, reps] @ k[:, reps].transpose(-1, -2))
    if spec.softcap:
        scores = spec.softcap * torch.tanh(scores / spec.softcap)
    return softmax_rows(scores, position_keep(spec.mask, q.shape[2], k.shape[2], q.device)) @ v


@variant("linear")
def linear(spec, n):
    feat = spec.kv_source
    g = spec.num_heads // spec.num_kv_heads
    phi = (lambda x: F.elu(x) + 1) if feat.feature_map == "elu_plus_one" else (lambda x: x)
    q = phi(n["query"])
    k = n["key"].softmax(2) if feat.feature_map == "key_softmax" else phi(n["key"])
    k = k.repeat_interleave(g, 1)
    v = n["value"].repeat_interleave(g, 1)
    if not spec.mask.causal:
        state = k.transpose(-1, -2) @ v
        out = spec.scale * (q @ state)
        if feat.normalize:
            out = out / (spec.scale * (q @ k.sum(2)[..., None]))
        return out
    if feat.update_rule == "linear":  # the causal sum in matrix form: (q kᵀ ⊙ tril) v
        S = q.shape[2]
        tril = torch.ones(S, S, dtype=torch.bool, device=q.device).tril()
        a = (q @ k.transpose(-1, -2)).masked_fill(~tril, 0.0)
        out = spec.scale * (a @ v)
        if feat.normalize:
            out = out / (spec.scale * a.sum(-1, keepdim=True))
        return out
    decay = n["decay"].repeat_interleave(g, 1).exp() if "decay" in n else None
    beta = n["beta"].repeat_interleave(g, 1) if "beta" in n else None
    B, H, S, Dk = q.shape
    state = q.new_zeros(B, H, Dk, v.shape[-1])
    outs = []
    for t in range(S):
        kt, vt = k[:, :, t], v[:, :, t]
        if decay is not None:
            state = decay[:, :, t, None, None] * state
        if beta is not None:
            err = vt - (kt[..., None, :] @ state).squeeze(-2)
            state = state + beta[:, :, t, None, None] * kt[..., :, None] * err[..., None, :]
        else:
            state = state + kt[..., :, None] * vt[..., None, :]
        outs.append(spec.scale * (q[:, :, t, None, :] @ state).squeeze(-2))
    return torch.stack(outs, 2)


@variant("conv_share")
def conv_share(spec, n):
    feat = spec.kv_source
    h, w = feat.image_size

    def conv(x, kernel):
        B, H, _, D = x.shape
        img = x.reshape(B, H, h, w, D).permute(0, 1, 4, 2, 3).reshape(B * H * D, 1, h, w)
        y = F.conv2d(img, kernel[None, None])          # one kernel for every channel, valid padding
        return y.reshape(B, H, D, -1).transpose(-1, -2)

    return sdpa(spec, conv(n["query"], n["conv_q"]), conv(n["key"], n["conv_k"]), conv(n["value"], n["conv_v"]))


@variant("head_blocks")
def head_blocks(spec, n):
    """Per-head non-overlapping blocks (0 = global head; shift: rolled by -b//2 as the authors' shift_windows, the
    wrapped block's two segments kept apart) with the per-head relative position bias table."""
    feat = spec.score_mods[0]
    q, k, v = n["query"], n["key"], n["value"]
    S = q.shape[2]
    pos = torch.arange(S, device=q.device)
    sizes = torch.tensor([b or S for b in feat.block_sizes], device=q.device)[:, None]          # (H, 1)
    shifts = torch.tensor([b // 2 if (feat.shift and b) else 0 for b in feat.block_sizes], device=q.device)[:, None]
    r = (pos[None] - shifts) % S                                                                  # rolled order
    label = torch.where(r < S - sizes, 0, torch.where(r < S - shifts, 1, 2))
    blk = r // sizes
    keep = (blk[:, :, None] == blk[:, None, :]) & (label[:, :, None] == label[:, None, :])     # (H, S, S)
    g = q.shape[1] // k.shape[1]
    if g > 1:
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    scores = spec.scale * (q @ k.transpose(-1, -2))
    if spec.softcap:
        scores = spec.softcap * torch.tanh(scores / spec.softcap)
    if feat.rel_bias:
        B = max(feat.max_block, 1)
        idx = (r[:, :, None] - r[:, None, :] + B - 1).clamp(0, 2 * B - 2)
        rel = torch.gather(n["rel_pos_bias"][:, None, :].expand(-1, S, -1), 2, idx)          # (H, S, S)
        blocked = torch.tensor([b > 0 for b in feat.block_sizes], device=q.device)[:, None, None]
        scores = scores + torch.where(blocked, rel, torch.zeros_like(rel))
    posk = position_keep(spec.mask, S, S, q.device)
    return softmax_rows(scores, keep if posk is None else keep & posk) @ v


@variant("alibi", "bucketed_bias", "window_bias")
def position_bias(spec, n):
    """ALiBi / T5 / Swin bias from the spec (a table lookup stays differentiable in rel_table), added where the
    additive mask goes, beside the op's own mask input."""
    import dataclasses

    from .functional import plain_attention

    q, k = n["query"], n["key"]
    mod = spec.score_mods[0]
    if mod.kind == "alibi":
        bias = torch.as_tensor(mod.bias(spec, q.shape[2], k.shape[2]), dtype=q.dtype, device=q.device)
    else:
        idx = torch.as_tensor(mod.index(q.shape[2], k.shape[2], spec.mask.alignment), device=q.device)
        bias = n["rel_table"].to(q.dtype)[:, idx]
    bias = bias[None]
    if spec.mask.input == "additive":
        bias = bias + n["mask"]
    elif spec.mask.input == "bool":
        bias = bias.masked_fill(~n["mask"].to(torch.bool), float("-inf"))
    plain = spec.replace(score_mods=(), mask=dataclasses.replace(spec.mask, input="additive"))
    return plain_attention(plain, {"query": q, "key": k, "value": n["value"], "mask": bias})


@variant("talking_heads")
def talking_heads(spec, n):
    """Shazeer et al. 2020 / CaiT: logits and probabilities mixed across heads by (H, H) maps around the softmax."""
    q, k, v = n["query"], n["key"], n["value"]
    feat = spec.head_mixing
    g = q.shape[1] // k.shape[1]
    k, v = (k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)) if g > 1 else (k, v)
    s = spec.scale * (q @ k.transpose(-1, -2))
    if spec.softcap:
        s = spec.softcap * torch.tanh(s / spec.softcap)
    mix = lambda x, w, b: torch.einsum("bgij,gh->bhij", x, w) + b[None, :, None, None]  # noqa: E731
    if feat.pre:
        s = mix(s, n["talk_pre"], n["talk_pre_bias"])
    keep = position_keep(spec.mask, q.shape[2], k.shape[2], q.device)
    if spec.mask.input == "additive":
        s = s + n["mask"]
    elif spec.mask.input == "bool":
        m = n["mask"].to(torch.bool)
        keep = m if keep is None else keep & m
    p = softmax_rows(s, keep)
    if feat.post:
        p = mix(p, n["talk_post"], n["talk_post_bias"])
    return p @ v


@variant("gated_positional")
def gated_positional(spec, n):
    """ConViT GPSA: content_gate·softmax(scale·q·kᵀ) + pos_attention, row-renormalized, times V."""
    q, k, v = n["query"], n["key"], n["value"]
    g = q.shape[1] // k.shape[1]
    k, v = (k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)) if g > 1 else (k, v)
    a = n["content_gate"][None, :, None, None] * (spec.scale * (q @ k.transpose(-1, -2))).softmax(-1) \
        + n["pos_attention"]
    if spec.score_mods[0].renormalize:
        a = a / a.sum(-1, keepdim=True)
    return a @ v
