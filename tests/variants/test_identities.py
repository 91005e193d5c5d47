"""Independent oracles for every attention variant feature (issue #15): reduction identities against torch.

The variant modules (attncc.nn), the interpreter's references (ir/interpreter/variants) and the cpu decompositions
(ir/passes/decompose) are all written from our own spec. Each case here states what a variant must equal when a
parameter is taken to a limit (one head per cluster, k >= L, density 1, windows >= L, stride 1, delta kernels, ...)
or what it is by the paper's definition, and computes that with torch only: F.scaled_dot_product_attention on
inputs rearranged with torch ops (windows, pooling, conv2d, topk masks), never with our formulas. Every case runs
three paths: the attncc.nn custom op (the modules' torch math), the IR interpreter, and the cpu target
(attncc.compile(..., strict=True): decomposed onto TVM kernels, any fallback is an error). The cpu path is in the
default suite for a few cases and slow-marked for the rest to keep the default cost small.

Linear attention is checked against the papers' recurrences written in torch (Katharopoulos et al. 2020 eq. 9 and
the causal cumulative-sum form; gated linear attention S_t = a_t S_{t-1} + k_t v_t^T; DeltaNet / Gated DeltaNet
S_t = a_t S_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T, Yang et al. 2024): those are the papers' equations, which
is the independent statement available for them.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attncc
from attncc.errors import FallbackWarning
from attncc.ir import Graph
from attncc.ir.interpreter import run_graph
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import (CHAI, MLA, MTLA, BlockSparse, BlockedLocal, ConvShare, GlobalQuery,
                                              Grouped, HeadBlocks, HiLo, KnockingHeads, LinearAttn, MoH, MultiWindow,
                                              Strided, TopkSparse, Uniform)
from attncc.ir.ops.attention_features.position_bias import Alibi, BucketedBias, WindowBias
from attncc.ir.ops.attention_features.gated_positional import GatedPositional
from attncc.ir.ops.attention_features.talking_heads import TalkingHeads
from attncc.nn import attention

RTOL, ATOL = 1e-4, 2e-5
B, H, S, D = 2, 4, 7, 8      # small shapes: a non-power-of-two length, batch > 1


def rand(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def qkv(hkv: int = H, sq: int = S, skv: int = S, d: int = D, dv: int = D, heads: int = H, batch: int = B, q_batch=None):
    return {"query": rand(q_batch or batch, heads, sq, d), "key": rand(batch, hkv, skv, d, seed=1),
            "value": rand(batch, hkv, skv, dv, seed=2)}


def sdpa(q, k, v, **kw) -> torch.Tensor:
    """torch's own SDPA (the oracle); GQA through enable_gqa."""
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=q.shape[1] != k.shape[1], **kw)


def graph_of(spec: AttentionSpec, arrays: dict) -> Graph:
    """One Attention op over graph inputs named like the spec's inputs."""
    g = Graph("identity")
    vals = [g.add_input(n, str(arrays[n].dtype), arrays[n].shape) for n in spec.input_names()]
    g.set_outputs([g.add1(Attention(spec=spec), vals, name="attention")])
    return g


def check_three_paths(spec: AttentionSpec, named: dict, want: torch.Tensor, cpu: bool, strict: bool = True):
    """attncc.nn custom op, IR interpreter and (if `cpu`) the compiled cpu target all equal the torch oracle."""
    want = want.detach().numpy()
    got = attention(spec, **named).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg="attncc.nn vs torch oracle")
    arrays = {n: t.numpy() for n, t in named.items()}
    graph = graph_of(spec, arrays)
    np.testing.assert_allclose(run_graph(graph, arrays)[0], want, rtol=RTOL, atol=ATOL,
                               err_msg="IR interpreter vs torch oracle")
    if cpu:
        cm = attncc.compile(graph, target="cpu", options={"cache": False}, strict=strict)
        out = cm(*[arrays[n] for n in spec.input_names()])
        np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL, err_msg="cpu target vs torch oracle")


# ---- cases: name -> () -> (spec, named torch inputs, torch oracle output) ------------------------------------
CASES: dict[str, Callable[[], tuple]] = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def chai_one_head_per_cluster_is_mha():
    t = qkv()
    return AttentionSpec(H, H, D, mask=MaskSpec(causal=True), head_mixing=CHAI((0, 1, 2, 3))), t, \
        sdpa(t["query"], t["key"], t["value"], is_causal=True)


@case
def chai_heads_use_their_cluster_representatives_scores():
    # CHAI (Agarwal et al. 2024): the cluster's representative (its first head) computes the probabilities,
    # every member applies them to its own V: SDPA with q/k gathered from the representatives
    t, clusters = qkv(), (0, 1, 0, 1)
    reps = [clusters.index(c) for c in clusters]
    return AttentionSpec(H, H, D, mask=MaskSpec(causal=True), head_mixing=CHAI(clusters)), t, \
        sdpa(t["query"][:, reps], t["key"][:, reps], t["value"], is_causal=True)


def _hilo(local_heads: int):
    # HiLo (Pan et al. 2022): Hi-Fi heads attend inside non-overlapping windows; Lo-Fi heads attend from every
    # query to window-average-pooled keys/values; the two groups of heads are concatenated
    image, window = (4, 6), (2, 3)
    (h, w), (wh, ww) = image, window
    t = qkv(sq=h * w, skv=h * w)

    def windows(x):   # (B, n, h*w, D) -> (B, n, windows, wh*ww, D)
        b, n, _, d = x.shape
        x = x.reshape(b, n, h // wh, wh, w // ww, ww, d).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(b, n, (h // wh) * (w // ww), wh * ww, d)

    def unwindows(x):
        b, n, _, _, d = x.shape
        x = x.reshape(b, n, h // wh, w // ww, wh, ww, d).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(b, n, h * w, d)

    def pooled(x):    # avg_pool2d over the token map, back to tokens
        b, n, _, d = x.shape
        img = x.reshape(b, n, h, w, d).permute(0, 1, 4, 2, 3).reshape(b, n * d, h, w)
        p = F.avg_pool2d(img, window)
        return p.reshape(b, n, d, -1).transpose(-1, -2)

    q, k, v = t["query"], t["key"], t["value"]
    nl = local_heads
    parts = []
    if nl:
        parts.append(unwindows(sdpa(windows(q[:, :nl]), windows(k[:, :nl]), windows(v[:, :nl]))))
    if nl < H:
        parts.append(sdpa(q[:, nl:], pooled(k[:, nl:]), pooled(v[:, nl:])))
    return AttentionSpec(H, H, D, kv_source=HiLo(image, window, local_heads)), t, torch.cat(parts, dim=1)


@case
def hilo_is_window_sdpa_concat_pooled_sdpa():
    return _hilo(2)


@case
def hilo_all_hifi_heads():
    return _hilo(H)


@case
def hilo_all_lofi_heads():
    return _hilo(0)


@case
def topk_with_k_at_least_length_is_mha():
    t = qkv()
    t["connectivity"] = rand(B, H, S, S, seed=3)
    return AttentionSpec(H, H, D, score_mods=(TopkSparse(S + 2),)), t, sdpa(t["query"], t["key"], t["value"])


@case
def topk_keeps_torch_topk_keys():
    # Sparsifiner: each query keeps its top-k keys by connectivity; the keep-mask from torch.topk (no ties in
    # random floats), connectivity broadcast over heads
    t, k = qkv(), 3
    conn = rand(B, 1, S, S, seed=3)
    keep = torch.zeros(B, 1, S, S, dtype=torch.bool).scatter(-1, conn.topk(k, dim=-1).indices, True)
    t["connectivity"] = conn
    return AttentionSpec(H, H, D, score_mods=(TopkSparse(k),)), t, sdpa(t["query"], t["key"], t["value"], attn_mask=keep)


@case
def block_sparse_density_one_is_mha():
    t = qkv()
    t["block_mask"] = torch.ones(1, 1, 3, 3, dtype=torch.bool)      # ceil(7/3) = 3 blocks
    return AttentionSpec(H, H, D, score_mods=(BlockSparse(3),)), t, sdpa(t["query"], t["key"], t["value"])


@case
def block_sparse_is_sdpa_with_expanded_block_mask():
    t, b = qkv(), 3
    blocks = (rand(1, H, 3, 3, seed=4) > 0) | torch.eye(3, dtype=torch.bool)   # diagonal kept: no empty rows
    keep = blocks.repeat_interleave(b, -2).repeat_interleave(b, -1)[..., :S, :S]
    t["block_mask"] = blocks
    return AttentionSpec(H, H, D, score_mods=(BlockSparse(b),)), t, sdpa(t["query"], t["key"], t["value"], attn_mask=keep)


@case
def multi_window_with_windows_at_least_length_is_mha():
    t = qkv()
    return AttentionSpec(H, H, D, mask=MaskSpec(causal=True), score_mods=(MultiWindow((S, S + 3, None, 100)),)), t, \
        sdpa(t["query"], t["key"], t["value"], is_causal=True)


@case
def multi_window_is_per_head_band_sdpa():
    windows = (1, 3, None, 0)
    t = qkv()
    i = torch.arange(S)
    dist = (i[:, None] - i[None, :]).abs()
    keep = torch.stack([torch.ones(S, S, dtype=torch.bool) if w is None else dist <= w for w in windows])
    return AttentionSpec(H, H, D, score_mods=(MultiWindow(windows),)), t, \
        sdpa(t["query"], t["key"], t["value"], attn_mask=keep)


@case
def head_blocks_all_global_is_mha():
    t = qkv()
    t["rel_pos_bias"] = rand(H, 1, seed=5)       # unused by global heads
    return AttentionSpec(H, H, D, score_mods=(HeadBlocks((0,) * H),)), t, sdpa(t["query"], t["key"], t["value"])


@case
def head_blocks_is_sdpa_per_block_with_its_bias():
    # MW-MHA (Yadav et al. 2024): head h cuts the sequence into blocks of b_h tokens, one torch SDPA per block
    # with the bias table entry t[h, (i - j) + b_h - 1] (its own 2 b_h - 1 entries) as the additive mask
    sizes, n = (2, 4, 0, 8), 8
    t = qkv(sq=n, skv=n)
    tables = {h: rand(2 * b - 1, seed=20 + h) for h, b in enumerate(sizes) if b}
    Bmax = max(sizes)
    table = torch.zeros(H, 2 * Bmax - 1)
    for h, tb in tables.items():
        table[h, Bmax - sizes[h]:Bmax + sizes[h] - 1] = tb
    t["rel_pos_bias"] = table
    heads = []
    for h, b in enumerate(sizes):
        q, k, v = (t[x][:, h:h + 1] for x in ("query", "key", "value"))
        if not b:
            heads.append(sdpa(q, k, v))
            continue
        r = torch.arange(b)
        bias = tables[h][(r[:, None] - r[None, :]) + b - 1]
        heads.append(torch.cat([sdpa(q[:, :, s:s + b], k[:, :, s:s + b], v[:, :, s:s + b], attn_mask=bias)
                                for s in range(0, n, b)], dim=2))
    return AttentionSpec(H, H, D, score_mods=(HeadBlocks(sizes),)), t, torch.cat(heads, dim=1)


@case
def blocked_local_with_block_at_least_length_is_mha():
    t = qkv()
    return AttentionSpec(H, H, D, score_mods=(BlockedLocal(S + 1, 2),)), t, sdpa(t["query"], t["key"], t["value"])


@case
def blocked_local_is_sdpa_per_block_over_its_halo():
    # HaloNet: query block [n b, (n+1) b) attends the keys of [n b - halo, (n+1) b + halo) (cut at the ends);
    # one torch SDPA call per block on the sliced keys
    b, halo = 3, 1
    t = qkv()
    q, k, v = t["query"], t["key"], t["value"]
    parts = []
    for s in range(0, S, b):
        lo, hi = max(0, s - halo), min(S, s + b + halo)
        parts.append(sdpa(q[:, :, s:s + b], k[:, :, lo:hi], v[:, :, lo:hi]))
    return AttentionSpec(H, H, D, score_mods=(BlockedLocal(b, halo),)), t, torch.cat(parts, dim=2)


def _convshare(kernels: str):
    # ConvShareViT: one (kh, kw) kernel per q/k/v shared by all channels, valid padding: torch conv2d with the
    # channels folded into the batch; a delta kernel at (a, c) crops the token map
    image, ks = (4, 5), (3, 2)
    (h, w), (kh, kw) = image, ks
    t = qkv(hkv=2, heads=2, sq=h * w, skv=h * w)
    if kernels == "delta":
        conv = {}
        for n, (a, c) in zip("qkv", ((0, 0), (2, 1), (1, 0))):
            conv[n] = torch.zeros(ks)
            conv[n][a, c] = 1.0
    else:
        conv = {n: rand(*ks, seed=5 + i) for i, n in enumerate("qkv")}

    def shared_conv(x, kern):
        b, n, _, d = x.shape
        img = x.reshape(b, n, h, w, d).permute(0, 1, 4, 2, 3).reshape(b * n * d, 1, h, w)
        o = F.conv2d(img, kern[None, None])
        return o.reshape(b, n, d, -1).transpose(-1, -2)

    q, k, v = (shared_conv(t[full], conv[full[0]]) for full in ("query", "key", "value"))
    for n in "qkv":
        t[f"conv_{n}"] = conv[n]
    return AttentionSpec(2, 2, D, kv_source=ConvShare(image, ks)), t, sdpa(q, k, v)


@case
def convshare_delta_kernels_are_mha_on_cropped_maps():
    return _convshare("delta")


@case
def convshare_is_torch_conv2d_then_sdpa():
    return _convshare("random")


@case
def global_query_is_sdpa_of_batch_broadcast_queries():
    # low-rank global context: the learned queries (1, H, Nq, D) are shared by the batch; key_rank is cost data
    # only, so the full-rank limit and rank 4 are the same computation
    t = qkv(hkv=2, sq=3, dv=6, q_batch=1)
    want = sdpa(t["query"].expand(B, -1, -1, -1), t["key"], t["value"])
    return AttentionSpec(H, 2, D, v_head_dim=6, kv_source=GlobalQuery(3, key_rank=4)), t, want


@case
def global_query_full_rank():
    t = qkv(hkv=2, sq=3, q_batch=1)
    return AttentionSpec(H, 2, D, kv_source=GlobalQuery(3, key_rank=0)), t, \
        sdpa(t["query"].expand(B, -1, -1, -1), t["key"], t["value"])


@case
def uniform_weight_one_is_mean_of_values():
    t = qkv(hkv=2)
    want = t["value"].mean(dim=2, keepdim=True).repeat_interleave(2, dim=1).expand(B, H, S, D)
    return AttentionSpec(H, 2, D, score_mods=(Uniform(1.0),)), t, want


@case
def uniform_blends_causal_sdpa_with_prefix_mean():
    # context broadcasting: (1 - w) attention + w mean of the visible values (a prefix mean under causality)
    t, w = qkv(), 0.3
    v = t["value"]
    prefix_mean = torch.stack([v[:, :, :i + 1].mean(dim=2) for i in range(S)], dim=2)
    want = (1 - w) * sdpa(t["query"], t["key"], v, is_causal=True) + w * prefix_mean
    return AttentionSpec(H, H, D, mask=MaskSpec(causal=True), score_mods=(Uniform(w),)), t, want


def _mla(absorbed: bool, sq: int):
    # DeepSeek-V2 MLA: k_h = [c W_uk_h | k_pe], v_h = c W_uv_h; composed in torch, then SDPA over per-head K/V
    # with the causal mask aligned bottom-right (a query block at the end of the cache)
    L, r, nope, dv, skv = 16, 4, 8, 6, S
    cache = rand(B, 1, skv, L + r, seed=1)
    t = {"query": rand(B, H, sq, nope + r), "key": cache, "value": cache[..., :L].contiguous(),
         "w_uk": 0.3 * rand(L, H, nope, seed=6), "w_uv": 0.3 * rand(L, H, dv, seed=7)}
    c, k_pe = cache[:, 0, :, :L], cache[:, :, :, L:]
    k = torch.cat([torch.einsum("bsl,lhn->bhsn", c, t["w_uk"]), k_pe.expand(B, H, skv, r)], dim=-1)
    v = torch.einsum("bsl,lhv->bhsv", c, t["w_uv"])
    i = torch.arange(sq)[:, None] + (skv - sq)
    keep = torch.arange(skv)[None, :] <= i
    spec = AttentionSpec(H, 1, nope + r, v_head_dim=dv, mask=MaskSpec(causal=True, alignment="bottom_right"),
                         kv_source=MLA(L, r, absorbed))
    return spec, t, sdpa(t["query"], k, v, attn_mask=keep)


@case
def mla_naive_is_mha_on_composed_kv():
    return _mla(False, S)


@case
def mla_absorbed_is_mha_on_composed_kv_decode_block():
    return _mla(True, 3)


@case
def mtla_stride_one_unit_merge_is_causal_mha():
    t = qkv(hkv=2)
    t["merge_weights"] = torch.ones(B, S)
    return AttentionSpec(H, 2, D, mask=MaskSpec(causal=True), kv_source=MTLA(1, rope_dim=2)), t, \
        sdpa(t["query"], t["key"], t["value"], is_causal=True)


@case
def mtla_stride_one_scales_each_token():
    # stride 1: every chunk is one token, so the merged entry is w_t kv_t and the stride-aware mask is causal
    t = qkv(hkv=2)
    w = 0.2 + rand(B, S, seed=8).abs()
    t["merge_weights"] = w
    ws = w[:, None, :, None]
    return AttentionSpec(H, 2, D, mask=MaskSpec(causal=True), kv_source=MTLA(1)), t, \
        sdpa(t["query"], ws * t["key"], ws * t["value"], is_causal=True)


@case
def grouped_is_mha_on_tokens_concatenated_in_groups():
    # Efficient Conformer grouped attention: g neighbouring tokens' full feature vectors (all heads) are
    # concatenated, the result is split into heads of g*D, attended, and split back into tokens
    g, s = 2, 8
    t = qkv(hkv=2, heads=2, sq=s, skv=s)

    def group(x):     # (B, h, s, D) -> tokens (B, s, h*D) -> (B, s/g, g*h*D) -> heads (B, h, s/g, g*D)
        b, n, _, d = x.shape
        return x.transpose(1, 2).reshape(b, s // g, n, g * d).transpose(1, 2)

    o = sdpa(*(group(t[n]) for n in ("query", "key", "value")), scale=D ** -0.5)
    want = o.transpose(1, 2).reshape(B, s, 2, D).transpose(1, 2)
    return AttentionSpec(2, 2, D, kv_source=Grouped(g)), t, want


@case
def strided_is_mha_of_subsampled_queries():
    t = qkv(hkv=2)
    return AttentionSpec(H, 2, D, kv_source=Strided(2)), t, sdpa(t["query"][:, :, ::2], t["key"], t["value"])


@case
def moh_gates_sdpa_heads_with_topk_softmax():
    # MoH (Jin et al. 2024) with fixed routers: shared heads weight 1, routed heads the softmax over the
    # token's top-k routed logits (torch.topk), 0 elsewhere; each head's SDPA output scaled by its weight
    shared, k = 1, 2
    t = qkv()
    logits = rand(B, S, H, seed=9)
    t["head_logits"] = logits
    top = logits[..., shared:].topk(k, dim=-1)
    gate = torch.zeros(B, S, H - shared).scatter(-1, top.indices, top.values.softmax(-1))
    gate = torch.cat([torch.ones(B, S, shared), gate], dim=-1)
    want = sdpa(t["query"], t["key"], t["value"]) * gate.transpose(1, 2)[..., None]
    return AttentionSpec(H, H, D, head_mixing=MoH(k, shared)), t, want


@case
def knocking_heads_mix_heads_before_sdpa():
    # Knocking-heads attention: x'_h = sum_j M[h, j] x_j for q, k, v before SDPA (GQA: k/v mix kv heads)
    t = qkv(hkv=2)
    m = {"q": rand(H, H, seed=10), "k": rand(2, 2, seed=11), "v": rand(2, 2, seed=12)}
    q, k, v = (torch.einsum("hj,bjsd->bhsd", m[n[0]], t[n]) for n in ("query", "key", "value"))
    for n in "qkv":
        t[f"knock_{n}"] = m[n]
    return AttentionSpec(H, 2, D, mask=MaskSpec(causal=True), head_mixing=KnockingHeads(("q", "k", "v"))), t, \
        sdpa(q, k, v, is_causal=True)


@case
def knocking_heads_identity_mixing_is_mha():
    t = qkv()
    t["knock_k"], t["knock_v"] = torch.eye(H), torch.eye(H)
    return AttentionSpec(H, H, D, head_mixing=KnockingHeads(("k", "v"))), t, sdpa(t["query"], t["key"], t["value"])


def _phi(x):
    return F.elu(x) + 1.0


@case
def linear_global_is_quadratic_form():
    # Katharopoulos et al. eq. 2-5: with sim(q, k) = phi(q)^T phi(k), V' = (phi(Q) phi(K)^T) V / rowsum — the
    # quadratic form computed here, the linear (phi(Q) (phi(K)^T V)) one in attncc; the scale cancels
    t = qkv()
    fq, fk = _phi(t["query"]), _phi(t["key"])
    a = fq @ fk.transpose(-1, -2)
    want = (a @ t["value"]) / a.sum(-1, keepdim=True)
    return AttentionSpec(H, H, D, kv_source=LinearAttn("linear", "elu_plus_one", True)), t, want


@case
def linear_causal_is_katharopoulos_cumsum():
    # causal linear attention (Katharopoulos et al. eq. 9/12): S_i = sum_{j<=i} phi(k_j) v_j^T,
    # z_i = sum_{j<=i} phi(k_j), out_i = phi(q_i)^T S_i / phi(q_i)^T z_i, with torch.cumsum; GQA shares states
    t = qkv(hkv=2)
    fq, fk = _phi(t["query"]), _phi(t["key"]).repeat_interleave(2, 1)
    v = t["value"].repeat_interleave(2, 1)
    states = torch.cumsum(fk[..., :, None] * v[..., None, :], dim=2)          # (B, H, S, Dk, Dv)
    z = torch.cumsum(fk, dim=2)
    want = torch.einsum("bhsk,bhskv->bhsv", fq, states) / torch.einsum("bhsk,bhsk->bhs", fq, z)[..., None]
    return AttentionSpec(H, 2, D, mask=MaskSpec(causal=True), kv_source=LinearAttn("linear", "elu_plus_one", True)), \
        t, want


@case
def linear_causal_unnormalized_is_scaled_masked_product():
    # identity feature map, no normalizer: out = scale * tril(Q K^T) V (the parallel form of the recurrence)
    t = qkv()
    scores = torch.tril(t["query"] @ t["key"].transpose(-1, -2))
    return AttentionSpec(H, H, D, mask=MaskSpec(causal=True), kv_source=LinearAttn("linear")), t, \
        D ** -0.5 * scores @ t["value"]


def _recurrence(t, rule: str):
    """The papers' recurrences in torch, state S (Dv, Dk) per head: o_t = scale S_t q_t.
    gated: S_t = a_t S_{t-1} + v_t k_t^T; delta: S_t = S_{t-1}(I - b_t k_t k_t^T) + b_t v_t k_t^T;
    gated_delta: S_t = a_t S_{t-1}(I - b_t k_t k_t^T) + b_t v_t k_t^T, with a_t = exp(decay_t)."""
    q, k, v = t["query"], t["key"], t["value"]
    s = torch.zeros(B, H, D, D)
    eye = torch.eye(D)
    outs = []
    for i in range(S):
        kt, vt = k[:, :, i], v[:, :, i]
        a = torch.exp(t["decay"][:, :, i])[..., None, None] if "decay" in t else 1.0
        if "beta" in t:
            b = t["beta"][:, :, i][..., None, None]
            s = a * s @ (eye - b * kt[..., :, None] * kt[..., None, :]) + b * vt[..., :, None] * kt[..., None, :]
        else:
            s = a * s + vt[..., :, None] * kt[..., None, :]
        outs.append(D ** -0.5 * (s @ q[:, :, i, :, None])[..., 0])
    return torch.stack(outs, dim=2)


def _linear_rule(rule: str):
    t = qkv()
    t["key"] = F.normalize(t["key"], dim=-1)           # DeltaNet keys are L2-normalized (keeps the state bounded)
    if "gated" in rule:
        t["decay"] = -0.5 * rand(B, H, S, seed=13).abs()
    if "delta" in rule:
        t["beta"] = torch.sigmoid(rand(B, H, S, seed=14))
    spec = AttentionSpec(H, H, D, mask=MaskSpec(causal=True), kv_source=LinearAttn(rule))
    return spec, t, _recurrence(t, rule)


@case
def linear_gated_is_decayed_state_recurrence():
    return _linear_rule("gated")


@case
def linear_delta_is_deltanet_recurrence():
    return _linear_rule("delta")


@case
def linear_gated_delta_is_gated_deltanet_recurrence():
    return _linear_rule("gated_delta")


@case
def alibi_is_sdpa_with_blooms_alibi_bias():
    # ALiBi (Press et al. 2022) as BLOOM builds it (transformers build_alibi_tensor: slope_h · j), GQA, causal with a
    # KV prefix (bottom-right): softmax ignores BLOOM's missing -slope·i row term
    bloom = pytest.importorskip("transformers.models.bloom.modeling_bloom")
    t = qkv(hkv=2, sq=5, skv=S)
    alibi = bloom.build_alibi_tensor(torch.ones(1, S), H, torch.float32).view(1, H, 1, S)
    keep = torch.ones(5, S, dtype=torch.bool).tril(S - 5)
    return AttentionSpec(H, 2, D, mask=MaskSpec(causal=True, alignment="bottom_right"), score_mods=(Alibi(),)), t, \
        sdpa(t["query"], t["key"], t["value"], attn_mask=alibi.masked_fill(~keep, float("-inf")))


@case
def bucketed_bias_is_sdpa_with_t5s_position_bias():
    # T5 (Raffel et al. 2020): the table entry of transformers' _relative_position_bucket(j - i), beside a padding
    # mask input (bool keep: the last key of batch 1 hidden)
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    t = qkv()
    table = rand(H, 32, seed=5)
    rel = torch.arange(S)[None, :] - torch.arange(S)[:, None]
    bias = table[:, t5.T5Attention._relative_position_bucket(rel, True, 32, 128)][None]
    keep = torch.ones(B, 1, S, S, dtype=torch.bool)
    keep[1, ..., -1] = False
    t["mask"], t["rel_table"] = keep, table
    spec = AttentionSpec(H, H, D, mask=MaskSpec(input="bool"), score_mods=(BucketedBias(32, 128, True),))
    return spec, t, sdpa(t["query"], t["key"], t["value"], attn_mask=bias.masked_fill(~keep, float("-inf")))


@case
def window_bias_is_sdpa_with_swins_relative_position_bias():
    # Swin (Liu et al. 2021): table[index] with transformers' SwinRelativePositionBias index of a 2x4 window, beside
    # an additive shifted-window style input
    swin = pytest.importorskip("transformers.models.swin.modeling_swin")
    t = qkv(sq=8, skv=8)
    rel = swin.SwinRelativePositionBias(H, (2, 4))
    table = rand(H, 21, seed=6)
    bias = table[:, rel.relative_position_index].view(1, H, 8, 8)
    extra = torch.zeros(B, 1, 8, 8)
    extra[1, :, :4, 4:] = -100.0
    t["mask"], t["rel_table"] = extra, table
    spec = AttentionSpec(H, H, D, mask=MaskSpec(input="additive"), score_mods=(WindowBias((2, 4)),))
    return spec, t, sdpa(t["query"], t["key"], t["value"], attn_mask=bias + extra)


@case
def talking_heads_is_mixed_logits_softmax_mixed_probs():
    # Talking-Heads (Shazeer et al. 2020, eqs. in Sec. 4): J = Σ_g L_g P_l[g, h]; W = softmax(J); O = Σ_g W_g P_w[g, h]
    # then O·V, with CaiT's Linear biases; causal, GQA keys repeated per query head
    t = qkv(hkv=2)
    pl, pw, bl, bw = rand(H, H, seed=7), rand(H, H, seed=8), rand(H, seed=9), rand(H, seed=10)
    k, v = t["key"].repeat_interleave(2, 1), t["value"].repeat_interleave(2, 1)
    logits = torch.einsum("bgij,gh->bhij", t["query"] @ k.transpose(-1, -2) / D ** 0.5, pl) + bl[:, None, None]
    probs = logits.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
    mixed = torch.einsum("bgij,gh->bhij", probs, pw) + bw[:, None, None]
    t.update(talk_pre=pl, talk_pre_bias=bl, talk_post=pw, talk_post_bias=bw)
    return AttentionSpec(H, 2, D, mask=MaskSpec(causal=True), head_mixing=TalkingHeads()), t, mixed @ v


@case
def linear_key_softmax_is_coat_factorized_attention():
    # CoaT (Xu et al. 2021, eq. 3): FactorAtt(Q, K, V) = (Q / √C) (softmax(K)ᵀ V), softmax over the tokens
    t = qkv()
    want = (t["query"] / D ** 0.5) @ (t["key"].softmax(dim=2).transpose(-1, -2) @ t["value"])
    return AttentionSpec(H, H, D, kv_source=LinearAttn("linear", "key_softmax", False)), t, want


@case
def gated_positional_is_convit_gpsa_blend():
    # ConViT GPSA (d'Ascoli et al. 2021, eq. 5): (1 - σ(λ_h))·softmax(QKᵀ/√d) + σ(λ_h)·softmax(r_ij·v_pos), renormalized
    t = qkv(hkv=2)
    lam = rand(H, seed=11)
    pos = torch.einsum("ijc,ch->hij", rand(S, S, 3, seed=12), rand(3, H, seed=13)).softmax(-1)[None]
    k, v = t["key"].repeat_interleave(2, 1), t["value"].repeat_interleave(2, 1)
    blend = (1 - lam.sigmoid())[:, None, None] * (t["query"] @ k.transpose(-1, -2) / D ** 0.5).softmax(-1) \
        + lam.sigmoid()[:, None, None] * pos
    t.update(content_gate=1 - lam.sigmoid(), pos_attention=lam.sigmoid()[None, :, None, None] * pos)
    return AttentionSpec(H, 2, D, score_mods=(GatedPositional(),)), t, (blend / blend.sum(-1, keepdim=True)) @ v


# cpu in the default suite for a few cases (one per family where the TVM path differs most); the rest slow
DEFAULT_CPU = {"chai_heads_use_their_cluster_representatives_scores", "hilo_is_window_sdpa_concat_pooled_sdpa",
               "mla_naive_is_mha_on_composed_kv", "head_blocks_is_sdpa_per_block_with_its_bias",
               "window_bias_is_sdpa_with_swins_relative_position_bias"}
# delta rules run the host reference on cpu by design (a documented fallback): checked loudly, not strictly
HOST_FALLBACK = {"linear_delta_is_deltanet_recurrence", "linear_gated_delta_is_gated_deltanet_recurrence"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_identity(name):
    spec, named, want = CASES[name]()
    check_three_paths(spec, named, want, cpu=name in DEFAULT_CPU)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(CASES) - DEFAULT_CPU))
def test_identity_cpu(name):
    spec, named, want = CASES[name]()
    if name in HOST_FALLBACK:
        with pytest.warns(FallbackWarning, match="recurrence"):
            check_three_paths(spec, named, want, cpu=True, strict=False)
    else:
        check_three_paths(spec, named, want, cpu=True)


LIMITS = {n for n in CASES if n.endswith("_is_mha") or n.endswith("is_causal_mha") or "full_rank" in n}


@pytest.mark.parametrize("name", sorted(set(CASES) - LIMITS))
def test_definition_cases_are_not_plain_attention(name):
    """The non-limit identities must exercise the variant: their oracle is not plain (causal) SDPA of q, k, v."""
    spec, t, want = CASES[name]()
    q, k, v = t["query"], t["key"], t["value"]
    if q.shape[0] != k.shape[0] or want.shape != q.shape[:-1] + v.shape[-1:] or k.shape[-1] != q.shape[-1]:
        return   # the variant changes shapes (strided, latent, global queries, valid convs): not plain attention
    for causal in (False, True):
        plain = sdpa(q, k, v, is_causal=causal)
        assert (want - plain).abs().max() > 1e-2, f"{name}: oracle equals plain SDPA (causal={causal})"


def test_every_feature_kind_has_an_identity():
    """A new feature kind without a case here fails."""
    from attncc.ir.ops.attention_spec import FEATURE_REGISTRY
    covered = set()
    for build in CASES.values():
        covered |= {f.kind for f in build()[0].features_list()}
    assert set(FEATURE_REGISTRY) <= covered, set(FEATURE_REGISTRY) - covered


def test_deepseek_v2_kv_cache_per_token_matches_the_paper_table():
    """DeepSeek-V2 (arXiv 2405.04434) Table 1: KV cache per token and layer is 2·n_h·d_h elements for MHA,
    2·n_g·d_h for GQA and (d_c + d_h^R) = 9/2·d_h for MLA (d_c = 4·d_h, d_h^R = d_h/2), "equal to GQA with
    only 2.25 groups". Checked on the cost rules (bf16, 2 bytes) with the real MLA feature."""
    from attncc.cost_models import attention_cost

    n_h, d_h = 128, 128
    per_token = lambda spec: attention_cost(spec, 1, 1, 64, "bfloat16", None, "h100").kv_bytes_per_token // 2  # noqa: E731
    mla = AttentionSpec(n_h, 1, d_h + d_h // 2, v_head_dim=d_h, kv_source=MLA(4 * d_h, d_h // 2, absorbed=True))
    assert per_token(mla) == 9 * d_h // 2 == 576
    assert per_token(AttentionSpec(n_h, n_h, d_h)) == 2 * n_h * d_h
    for groups in (1, 2, 4, 8):
        assert per_token(AttentionSpec(n_h, groups, d_h)) == 2 * groups * d_h
    assert per_token(mla) / (2 * d_h) == 2.25      # the paper's "GQA with 2.25 groups"
