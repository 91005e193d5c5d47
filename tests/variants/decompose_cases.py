"""Variant Attention graphs (one featured op each) for the decomposition tests: spec + random inputs per shape."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from attncc.ir import Graph
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import (CHAI, MLA, MTLA, BlockSparse, BlockedLocal, ConvShare, GlobalQuery,
                                              Grouped, HeadBlocks, HiLo, KnockingHeads, LinearAttn, MoH, MultiWindow,
                                              Strided, TopkSparse, Uniform)
from attncc.ir.ops.attention_features.position_bias import Alibi, BucketedBias, WindowBias
from attncc.ir.ops.attention_features.gated_positional import GatedPositional
from attncc.ir.ops.attention_features.talking_heads import TalkingHeads


@dataclass(frozen=True)
class Case:
    """`build(shape_index)` -> (spec, {input name: array}); shape 0 has batch 2, shape 1 batch 3 and odd lengths."""

    name: str
    build: Callable[[int], tuple]


def _rng(i: int):
    return np.random.default_rng(100 + i)


def qkv(i, B, H, Hkv, Sq, Skv, D, Dv=None, q_batch=None):
    r = _rng(i)
    f = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
    return {"query": f(q_batch or B, H, Sq, D), "key": f(B, Hkv, Skv, D), "value": f(B, Hkv, Skv, Dv or D)}


SIZES = [(2, 12), (3, 21)]          # (batch, sequence): non-power-of-two lengths, batch > 1


def mla(absorbed: bool, causal: bool):
    def build(i):
        B, S = SIZES[i]
        L, r, nope, H, Dv = 16, 4, 8, 4, 6
        spec = AttentionSpec(4, 1, nope + r, v_head_dim=Dv, mask=MaskSpec(causal=causal, alignment="bottom_right"),
                             kv_source=MLA(L, r, absorbed))
        g = _rng(i)
        cache = g.standard_normal((B, 1, S, L + r)).astype(np.float32)
        ins = {"query": g.standard_normal((B, H, S - 2 * causal * i, nope + r)).astype(np.float32), "key": cache,
               "value": np.ascontiguousarray(cache[..., :L]),
               "w_uk": (0.3 * g.standard_normal((L, H, nope))).astype(np.float32),
               "w_uv": (0.3 * g.standard_normal((L, H, Dv))).astype(np.float32)}
        return spec, ins
    return build


def mtla(i):
    B, S = SIZES[i]
    ins = qkv(i, B, 4, 2, S, S, 8)
    ins["merge_weights"] = _rng(i).uniform(0.2, 1.0, (B, S)).astype(np.float32)
    return AttentionSpec(4, 2, 8, mask=MaskSpec(causal=True), kv_source=MTLA(2 + i, rope_dim=2)), ins


def global_query(i):
    B, S = SIZES[i]
    return AttentionSpec(4, 2, 8, v_head_dim=6, kv_source=GlobalQuery(3, key_rank=4)), qkv(i, B, 4, 2, 3, S, 8, 6, q_batch=1)


def grouped(i):
    B, S = SIZES[i]
    S = S + 1 - i        # 13 pads to 15, 21 needs no padding
    return AttentionSpec(4, 4, 8, v_head_dim=6, mask=MaskSpec(causal=True), kv_source=Grouped(3)), qkv(i, B, 4, 4, S, S, 8, 6)


def strided(i):
    B, S = SIZES[i]
    return AttentionSpec(4, 2, 8, kv_source=Strided(2 + i)), qkv(i, B, 4, 2, S, S, 8)


def hilo(local_heads):
    def build(i):
        B, _ = SIZES[i]
        image, window = [((4, 6), (2, 3)), ((6, 4), (3, 2))][i]
        S = image[0] * image[1]
        return AttentionSpec(4, 4, 8, kv_source=HiLo(image, window, local_heads)), qkv(i, B, 4, 4, S, S, 8)
    return build


def conv_share(i):
    B, _ = SIZES[i]
    image, kernel = [((4, 5), (2, 3)), ((5, 5), (3, 3))][i]
    S = image[0] * image[1]
    ins = qkv(i, B, 2, 2, S, S, 8)
    for n in "qkv":
        ins[f"conv_{n}"] = _rng(i + ord(n)).standard_normal(kernel).astype(np.float32)
    return AttentionSpec(2, 2, 8, kv_source=ConvShare(image, kernel)), ins


def linear(rule: str, fmap: str = "identity", normalize: bool = False, causal: bool = True):
    def build(i):
        B, S = SIZES[i]
        ins = qkv(i, B, 4, 2, S, S, 8, 6)
        if fmap == "identity" and normalize:   # keep the normalizer away from zero
            ins = {k: np.abs(a) for k, a in ins.items()}
        feat = LinearAttn(rule, fmap, normalize)
        for name in feat.extra_inputs():
            ins[name] = (-_rng(i).uniform(0.0, 0.5, (B, 2, S))).astype(np.float32)
        return AttentionSpec(4, 2, 8, v_head_dim=6, mask=MaskSpec(causal=causal), kv_source=feat), ins
    return build


def moh(i):
    B, S = SIZES[i]
    ins = qkv(i, B, 5, 5, S, S, 8)
    logits = _rng(i).standard_normal((B, S, 5)).astype(np.float32)
    logits[0, 0, 2:4] = logits[0, 0, 1]              # ties: lower head index wins
    ins["head_logits"] = logits
    return AttentionSpec(5, 5, 8, head_mixing=MoH(top_k=2, shared_heads=1)), ins


def moh_authors(i):
    """routers='moh': the authors' shared router and shared-vs-routed balancing router (balance_logits input)."""
    spec, ins = moh(i)
    ins["balance_logits"] = _rng(i + 7).standard_normal(ins["head_logits"].shape[:2] + (2,)).astype(np.float32)
    return spec.replace(head_mixing=MoH(top_k=2, shared_heads=2, routers="moh")), ins


def knocking(i):
    B, S = SIZES[i]
    ins = qkv(i, B, 4, 2, S, S, 8)
    g = _rng(i)
    ins["knock_q"] = (np.eye(4) + 0.2 * g.standard_normal((4, 4))).astype(np.float32)
    ins["knock_v"] = (np.eye(2) + 0.2 * g.standard_normal((2, 2))).astype(np.float32)
    return AttentionSpec(4, 2, 8, mask=MaskSpec(causal=True), head_mixing=KnockingHeads(("q", "v"))), ins


def chai(i):
    B, S = SIZES[i]
    return (AttentionSpec(6, 6, 8, v_head_dim=4, softcap=20.0, mask=MaskSpec(causal=True),
                          head_mixing=CHAI((0, 1, 0, 2, 1, 0))), qkv(i, B, 6, 6, S, S, 8, 4))


def score_mods(*mods, causal=False, extras=()):
    def build(i):
        B, S = SIZES[i]
        Sq = S - 3 * i
        ins = qkv(i, B, 4, 2, Sq, S, 8)
        g = _rng(i)
        if "connectivity" in extras:
            ins["connectivity"] = g.standard_normal((B, 1, Sq, S)).astype(np.float32)
        if "block_mask" in extras:
            nb = lambda n: -(-n // 4)  # noqa: E731
            ins["block_mask"] = g.random((1, 4, nb(Sq), nb(S))) < 0.5
        return AttentionSpec(4, 2, 8, mask=MaskSpec(causal=causal, alignment="bottom_right"), score_mods=mods), ins
    return build


def head_blocks(rel_bias: bool, shift: bool = False):
    """MW-MHA: per-head blocks dividing the length (0 = global), GQA, with/without the relative bias table."""
    def build(i):
        B, S = SIZES[i]
        sizes = ((2, 3, 0, 6), (3, 7, 0, 21))[i]
        ins = qkv(i, B, 4, 2, S, S, 8)
        if rel_bias:
            ins["rel_pos_bias"] = _rng(i).standard_normal((4, 2 * max(sizes) - 1)).astype(np.float32)
        return AttentionSpec(4, 2, 8, score_mods=(HeadBlocks(sizes, rel_bias, shift),)), ins
    return build


def position_bias(mod, mask: str = "none", causal: bool = False):
    """A position-bias score mod with its table (if any) and a remaining mask input of kind `mask`."""
    def build(i):
        B, S = SIZES[i]
        if mod.kind == "window_bias":
            S = mod.window[0] * mod.window[1]
        Sq = S if mod.kind == "window_bias" else S - 3 * i
        ins = qkv(i, B, 4, 2, Sq, S, 8)
        g = _rng(i)
        if mod.kind != "alibi":
            ins["rel_table"] = g.standard_normal((4, mod.entries())).astype(np.float32)
        if mask == "bool":
            ins["mask"] = g.random((B, 1, Sq, S)) < 0.8
        elif mask == "additive":
            ins["mask"] = np.where(g.random((B, 1, Sq, S)) < 0.3, -100.0, 0.0).astype(np.float32)
        spec = AttentionSpec(4, 2, 8, mask=MaskSpec(causal=causal, alignment="bottom_right", input=mask),
                             score_mods=(mod,))
        return spec, ins
    return build


def talking_heads(pre: bool, post: bool, mask: str = "none"):
    """Talking heads with GQA, causal bottom-right (shape 1: Sq < Skv), optional additive mask input."""
    def build(i):
        B, S = SIZES[i]
        Sq = S - 3 * i
        ins = qkv(i, B, 4, 2, Sq, S, 8)
        g = _rng(i)
        for name, on in (("pre", pre), ("post", post)):
            if on:
                ins[f"talk_{name}"] = (0.5 * g.standard_normal((4, 4))).astype(np.float32)
                ins[f"talk_{name}_bias"] = (0.1 * g.standard_normal(4)).astype(np.float32)
        if mask == "additive":
            ins["mask"] = np.where(g.random((B, 1, Sq, S)) < 0.2, -1e4, 0.0).astype(np.float32)
        spec = AttentionSpec(4, 2, 8, mask=MaskSpec(causal=True, alignment="bottom_right", input=mask),
                             head_mixing=TalkingHeads(pre, post))
        return spec, ins
    return build


def gated_positional(renormalize: bool):
    """GPSA blend: per-head content gate and a positional map (rows of a softmax times 1 - gate), GQA."""
    def build(i):
        B, S = SIZES[i]
        ins = qkv(i, B, 4, 2, S, S, 8)
        g = _rng(i)
        gate = g.uniform(0.2, 0.8, 4).astype(np.float32)
        logits = g.standard_normal((1, 4, S, S))
        pos = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        ins["content_gate"], ins["pos_attention"] = gate, ((1 - gate)[None, :, None, None] * pos).astype(np.float32)
        return AttentionSpec(4, 2, 8, score_mods=(GatedPositional(renormalize),)), ins
    return build


CASES = [
    Case("linear-key-softmax", linear("linear", "key_softmax", causal=False)),
    Case("gated_positional", gated_positional(True)),
    Case("gated_positional-raw", gated_positional(False)),
    Case("talking_heads", talking_heads(True, True)),
    Case("talking_heads-pre-masked", talking_heads(True, False, "additive")),
    Case("alibi", position_bias(Alibi(), causal=True)),
    Case("alibi-additive", position_bias(Alibi(4.0), "additive")),
    Case("bucketed_bias", position_bias(BucketedBias(8, 16, True), "bool")),
    Case("bucketed_bias-causal", position_bias(BucketedBias(32, 128, False), causal=True)),
    Case("window_bias", position_bias(WindowBias((3, 4)), "additive")),
    Case("mla-absorbed", mla(True, True)),
    Case("mla-naive", mla(False, False)),
    Case("mtla", mtla),
    Case("global_query", global_query),
    Case("grouped", grouped),
    Case("strided", strided),
    Case("hilo", hilo(2)),
    Case("hilo-all-local", hilo(4)),
    Case("conv_share", conv_share),
    Case("linear-global-normalized", linear("linear", "elu_plus_one", True, causal=False)),
    Case("linear-causal", linear("linear", normalize=True)),
    Case("linear-gated", linear("gated", "elu_plus_one")),
    Case("moh", moh),
    Case("moh-authors-routers", moh_authors),
    Case("knocking_heads", knocking),
    Case("chai", chai),
    Case("multi_window", score_mods(MultiWindow((2, None, 5, 0)), causal=True)),
    Case("sliding_window", score_mods(MultiWindow((3, 3, 3, 3)))),
    Case("blocked_local+uniform", score_mods(BlockedLocal(4, 1), Uniform(0.5), causal=True)),
    Case("topk_sparse", score_mods(TopkSparse(5), extras=("connectivity",))),
    Case("block_sparse", score_mods(BlockSparse(4), causal=True, extras=("block_mask",))),
    Case("uniform", score_mods(Uniform(1.0))),
    Case("head_blocks", head_blocks(True)),
    Case("head_blocks-no-bias", head_blocks(False)),
    Case("head_blocks-shift", head_blocks(True, shift=True)),
]

UNDECOMPOSABLE = [Case("linear-delta", linear("delta")), Case("linear-gated_delta", linear("gated_delta"))]


def graph_of(spec: AttentionSpec, inputs: dict) -> Graph:
    """One Attention op over graph inputs named like the spec's inputs."""
    g = Graph("variant")
    vals = [g.add_input(n, str(inputs[n].dtype), inputs[n].shape) for n in spec.input_names()]
    g.set_outputs([g.add1(Attention(spec=spec), vals, name="attention")])
    return g
