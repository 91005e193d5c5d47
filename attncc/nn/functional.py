"""Torch math of every attention variant: the eager implementation behind `torch.ops.attncc.attention`.

Written in torch independently of the numpy oracle (ir/interpreter/variants/), so tests comparing the two
check real agreement. Each function takes the spec and the op inputs by name (spec.input_names()).
"""
from __future__ import annotations

from typing import Callable

import torch

TORCH_VARIANTS: dict[str, Callable] = {}


def variant(*kinds: str):
    """Register `fn(spec, named) -> Tensor` as the torch math of feature kinds."""

    def deco(fn):
        for k in kinds:
            TORCH_VARIANTS[k] = fn
        return fn

    return deco


def position_keep(mask, q_len: int, kv_len: int, device=None) -> torch.Tensor | None:
    """(Sq, Skv) bool from the spec's causal/window fields (None = all visible)."""
    left, right = mask.window_left, mask.effective_window_right
    if left is None and right is None:
        return None
    offset = kv_len - q_len if mask.alignment == "bottom_right" else 0
    i = torch.arange(q_len, device=device)[:, None] + offset
    j = torch.arange(kv_len, device=device)[None, :]
    keep = torch.ones(q_len, kv_len, dtype=torch.bool, device=device)
    if left is not None:
        keep = keep & (j >= i - left)
    if right is not None:
        keep = keep & (j <= i + right)
    return keep


def softmax_rows(scores: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
    """Row softmax over kept entries; rows with nothing kept give zeros."""
    if keep is not None:
        scores = scores.masked_fill(~keep, float("-inf"))
    m = scores.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(scores - m)
    s = p.sum(-1, keepdim=True)
    return p / torch.where(s > 0, s, torch.ones_like(s))


def sdpa(spec, q, k, v, keep=None, use_position_mask: bool = True) -> torch.Tensor:
    """Scaled dot-product attention with GQA head sharing, softcap, the spec's position mask AND `keep`."""
    g = q.shape[1] // k.shape[1]
    if g > 1:
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    scores = spec.scale * (q @ k.transpose(-1, -2))
    if spec.softcap:
        scores = spec.softcap * torch.tanh(scores / spec.softcap)
    pos = position_keep(spec.mask, q.shape[2], k.shape[2], q.device) if use_position_mask else None
    if pos is not None:
        keep = pos if keep is None else keep & pos
    return softmax_rows(scores, keep) @ v


def plain_attention(spec, named) -> torch.Tensor:
    """An Attention op without variant features (MHA/GQA/MQA/cross, causal/window, bool/additive mask)."""
    if spec.layout != "bhsd" or spec.kv_cache or spec.rope is not None or spec.mask.kv_lengths:
        raise ValueError("attncc::attention supports plain specs in bhsd layout without in-op KV cache, RoPE or "
                         f"kv_lengths; got {spec.summary()}")
    q, k, v = named["query"], named["key"], named["value"]
    if spec.mask.input == "none":
        return sdpa(spec, q, k, v)
    m = named["mask"]
    if spec.mask.input == "bool":
        return sdpa(spec, q, k, v, keep=m.to(torch.bool))
    g = q.shape[1] // k.shape[1]
    k2, v2 = (k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)) if g > 1 else (k, v)
    scores = spec.scale * (q @ k2.transpose(-1, -2))
    if spec.softcap and spec.softcap_order == "before_mask":
        scores = spec.softcap * torch.tanh(scores / spec.softcap)
    scores = scores + m
    if spec.softcap and spec.softcap_order == "after_mask":
        scores = spec.softcap * torch.tanh(scores / spec.softcap)
    return softmax_rows(scores, position_keep(spec.mask, q.shape[2], k.shape[2], q.device)) @ v2


def run_variant(spec, named) -> torch.Tensor:
    """The torch math of `spec` on its named inputs."""
    for feat in spec.features_list():
        if feat.kind in TORCH_VARIANTS:
            return TORCH_VARIANTS[feat.kind](spec, named)
    return plain_attention(spec, named)


# ---- latent KV: MLA, MTLA ------------------------------------------------------------------
@variant("mla")
def mla(spec, n):
    feat = spec.kv_source
    q, cache, c, w_uk, w_uv = n["query"], n["key"], n["value"], n["w_uk"], n["w_uv"]
    nope = spec.head_dim - feat.rope_dim
    if feat.absorbed:
        q_lat = torch.einsum("bhsn,lhn->bhsl", q[..., :nope], w_uk)
        o = sdpa(spec, torch.cat([q_lat, q[..., nope:]], -1), cache, c)
        return torch.einsum("bhsl,lhv->bhsv", o, w_uv)
    k_nope = torch.einsum("bsl,lhn->bhsn", c[:, 0], w_uk)
    k_pe = cache[:, :, :, feat.latent_dim:].expand(-1, spec.num_heads, -1, -1)
    v = torch.einsum("bsl,lhv->bhsv", c[:, 0], w_uv)
    return sdpa(spec, q, torch.cat([k_nope, k_pe], -1), v)


@variant("mtla")
def mtla(spec, n):
    s = spec.kv_source.stride
    w = n["merge_weights"][:, None, :, None]
    S = n["key"].shape[2]
    t = torch.arange(S, device=w.device)
    chunk = t // s
    # running in-chunk sums as a (S, S) lower-triangular same-chunk matrix: m_t = Σ_u [chunk u == chunk t, u <= t] w_u x_u
    merge = ((chunk[:, None] == chunk[None, :]) & (t[None, :] <= t[:, None])).to(n["key"].dtype)
    k, v = merge @ (w * n["key"]), merge @ (w * n["value"])
    r = spec.kv_source.rope_dim
    if r:   # decoupled RoPE key channels stay per token
        k = torch.cat([k[..., :-r], n["key"][..., -r:]], dim=-1)
    keep = (t[None, :] == t[:, None]) | ((t[None, :] < t[:, None]) & ((t[None, :] + 1) % s == 0))
    return sdpa(spec, n["query"], k, v, keep=keep, use_position_mask=False)


@variant("global_query")
def global_query(spec, n):
    k = n["key"]
    return sdpa(spec, n["query"].expand(k.shape[0], -1, -1, -1), k, n["value"])


@variant("grouped")
def grouped(spec, n):
    g = spec.kv_source.group_size
    Sq = n["query"].shape[2]

    def regroup(x):   # zero-pad to a multiple of g, concatenate g token vectors, then split heads (the authors' order)
        B, H, S, Dx = x.shape
        x = torch.nn.functional.pad(x, (0, 0, 0, -S % g))
        return x.transpose(1, 2).reshape(B, -1, H, g * Dx).transpose(1, 2)

    o = sdpa(spec, *(regroup(n[x]) for x in ("query", "key", "value")))
    B, H, Sg, GD = o.shape
    return o.transpose(1, 2).reshape(B, Sg * g, H, GD // g)[:, :Sq].transpose(1, 2)


@variant("strided")
def strided(spec, n):
    return sdpa(spec, n["query"][:, :, ::spec.kv_source.stride], n["key"], n["value"])
