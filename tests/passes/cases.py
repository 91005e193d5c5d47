"""Small one-concept graphs for the golden before/after tests, keyed by (pass, case)."""
from __future__ import annotations

import numpy as np

from attncc.ir import (Attention, AttentionSpec, Binary, Expand, Graph, Linear, MaskSpec, Reshape, Rotary,
                       Transpose)

from .rope_graphs import sdpa_with_kv_cache, sdpa_with_rope

SWAP = (0, 2, 1, 3)


def _spec(**kw):
    return AttentionSpec(**{"num_heads": 4, "num_kv_heads": 4, "head_dim": 8, **kw})


def layout_transposes() -> Graph:
    """Attention between (B,S,H,D)->(B,H,S,D) transposes: canonicalize-attention folds them into layout."""
    g = Graph("layout")
    q, k, v = (g.add_input(n, "float32", (2, "S", 4, 8)) for n in "qkv")
    q, k, v = (g.add1(Transpose(SWAP), [x], name=f"{n}_t") for x, n in zip((q, k, v), "qkv"))
    o = g.add1(Attention(spec=_spec(mask=MaskSpec(causal=True))), [q, k, v], name="attn")
    g.set_outputs([g.add1(Transpose(SWAP), [o], name="out_t")])
    return g


def scale_and_mask() -> Graph:
    """q * c and a constant causal additive mask: folded into spec.scale and MaskSpec(causal)."""
    g = Graph("scale_mask")
    q, k, v = (g.add_input(n, "float32", (1, 4, 6, 8)) for n in "qkv")
    qs = g.add1(Binary("mul"), [q, g.add_constant(np.array(0.5, np.float32), "c")], name="q_scaled")
    bias = np.triu(np.full((6, 6), -np.inf, np.float32), 1)[None, None]
    o = g.add1(Attention(spec=_spec(scale=1.0, mask=MaskSpec(input="additive"))), [qs, k, v, g.add_constant(bias, "bias")],
               name="attn")
    g.set_outputs([o])
    return g


def repeat_kv() -> Graph:
    """HF repeat_kv (reshape, expand, reshape) on K and V: folded into num_kv_heads=2."""
    g = Graph("repeat_kv")
    q = g.add_input("q", "float32", (1, 4, "S", 8))
    k, v = (g.add_input(n, "float32", (1, 2, "S", 8)) for n in "kv")
    reps = []
    for x, n in ((k, "k"), (v, "v")):
        r1 = g.add1(Reshape((1, 2, 1, "S", 8)), [x], name=f"{n}_r1")
        e = g.add1(Expand((1, 2, 2, "S", 8)), [r1], name=f"{n}_expand")
        reps.append(g.add1(Reshape((1, 4, "S", 8)), [e], name=f"{n}_r2"))
    g.set_outputs([g.add1(Attention(spec=_spec()), [q, *reps], name="attn")])
    return g


def separate_qkv() -> Graph:
    """Three Linears reading one tensor feed q/k/v: fuse-qkv packs them."""
    rng = np.random.default_rng(0)
    g = Graph("qkv")
    x = g.add_input("x", "float32", (1, 6, 32))
    outs = []
    for n, bias in (("q", True), ("k", False), ("v", True)):
        ins = [x, g.add_constant(rng.standard_normal((32, 32)).astype(np.float32), f"w{n}")]
        if bias:
            ins.append(g.add_constant(rng.standard_normal(32).astype(np.float32), f"b{n}"))
        p = g.add1(Linear(has_bias=bias), ins, name=f"{n}_proj")
        r = g.add1(Reshape((1, 6, 4, 8)), [p], name=f"{n}_split")
        outs.append(g.add1(Transpose(SWAP), [r], name=f"{n}_heads"))
    g.set_outputs([g.add1(Attention(spec=_spec()), outs, name="attn")])
    return g


def cross_attention_kv() -> Graph:
    """Cross-attention: K and V project the encoder output (packed); Q projects the decoder state (kept)."""
    rng = np.random.default_rng(1)
    g = Graph("cross")
    x = g.add_input("x", "float32", (1, 4, 1, 8))
    enc = g.add_input("enc", "float32", (1, 5, 8))
    ks = []
    for n in "kv":
        p = g.add1(Linear(), [enc, g.add_constant(rng.standard_normal((8, 8)).astype(np.float32), f"w{n}")], name=f"{n}_proj")
        ks.append(g.add1(Reshape((1, 1, 5, 8)), [p], name=f"{n}_heads"))
    q = g.add1(Expand((1, 4, 1, 8)), [x], name="q")
    g.set_outputs([g.add1(Attention(spec=_spec(num_kv_heads=1)), [q, *ks], name="attn")])
    return g


def rope_prologue() -> Graph:
    """Rotary on q and k with shared cos/sin feeding only attention: absorbed into spec.rope."""
    g = Graph("rope")
    q, k, v = (g.add_input(n, "float32", (1, 4, "S", 8)) for n in "qkv")
    cos, sin = (g.add_input(n, "float32", (1, "S", 4)) for n in ("cos", "sin"))
    qr = g.add1(Rotary("rotate_half", 8), [q, cos, sin], name="q_rope")
    kr = g.add1(Rotary("rotate_half", 8), [k, cos, sin], name="k_rope")
    g.set_outputs([g.add1(Attention(spec=_spec(mask=MaskSpec(causal=True))), [qr, kr, v], name="attn")])
    return g


def decode_step() -> Graph:
    """One query token against a KV cache of 4096: decode-split-kv sets num_splits."""
    g = Graph("decode")
    q = g.add_input("q", "float32", (1, 8, 1, 16))
    k, v = (g.add_input(n, "float32", (1, 2, 1, 16)) for n in "kv")
    pk, pv = (g.add_input(n, "float32", (1, 2, 4095, 16)) for n in ("past_k", "past_v"))
    spec = AttentionSpec(num_heads=8, num_kv_heads=2, head_dim=16, kv_cache=True,
                         mask=MaskSpec(causal=True, alignment="bottom_right"))
    g.set_outputs(g.add(Attention(spec=spec), [q, k, v, pk, pv], name="attn"))
    return g


def duplicate_subexpressions() -> Graph:
    """Two identical Rotary tables and two identical transposes: cse keeps one of each."""
    g = Graph("cse")
    x = g.add_input("x", "float32", (1, 4, 6, 8))
    t1 = g.add1(Transpose(SWAP), [x], name="t1")
    t2 = g.add1(Transpose(SWAP), [x], name="t2")
    c1 = g.add_constant(np.ones((1, 1, 8), np.float32), "c1")
    c2 = g.add_constant(np.ones((1, 1, 8), np.float32), "c2")
    a = g.add1(Binary("mul"), [t1, c1], name="a")
    b = g.add1(Binary("mul"), [t2, c2], name="b")
    g.set_outputs([g.add1(Binary("add"), [a, b], name="sum")])
    return g


def plain_mlp() -> Graph:
    """No attention, nothing to fuse: every fusion pass must leave it unchanged."""
    rng = np.random.default_rng(2)
    g = Graph("mlp")
    x = g.add_input("x", "float32", (2, 6, 16))
    h = g.add1(Linear(), [x, g.add_constant(rng.standard_normal((16, 32)).astype(np.float32), "w1")], name="fc1")
    g.set_outputs([g.add1(Linear(), [h, g.add_constant(rng.standard_normal((32, 16)).astype(np.float32), "w2")], name="fc2")])
    return g


# (pipeline, case builder): golden files live at golden/<first pass>/<case>.{before,after}.ir
GOLDEN_CASES = {
    ("canonicalize-attention", "layout_transposes"): layout_transposes,
    ("canonicalize-attention", "scale_and_mask"): scale_and_mask,
    ("fold-repeat-kv", "repeat_kv"): repeat_kv,
    ("fuse-qkv", "separate_qkv"): separate_qkv,
    ("fuse-qkv", "cross_attention_kv"): cross_attention_kv,
    ("fuse-attention", "rope_prologue"): rope_prologue,
    ("fuse-attention{epilogue=residual}", "epilogue"): None,  # filled below
    ("decode-split-kv{parallel_units=16}", "decode_step"): decode_step,
    ("cse", "duplicate_subexpressions"): duplicate_subexpressions,
    ("lift-rotary", "spelled_out_rope"): sdpa_with_rope,
    ("fold-kv-cache", "kv_cache_concat"): sdpa_with_kv_cache,
}


def epilogue() -> Graph:
    """Attention -> merge heads -> Linear(+bias) -> + residual: one FusedAttention with epilogue=residual."""
    rng = np.random.default_rng(3)
    g = Graph("epilogue")
    x = g.add_input("x", "float32", (1, 6, 32))
    q, k, v = (g.add_input(n, "float32", (1, 6, 4, 8)) for n in "qkv")
    o = g.add1(Attention(spec=_spec(layout="bshd", mask=MaskSpec(causal=True))), [q, k, v], name="attn")
    m = g.add1(Reshape((1, 6, 32)), [o], name="merge")
    p = g.add1(Linear(has_bias=True), [m, g.add_constant(rng.standard_normal((32, 32)).astype(np.float32), "wo"),
                                       g.add_constant(rng.standard_normal(32).astype(np.float32), "bo")], name="o_proj")
    g.set_outputs([g.add1(Binary("add"), [x, p], name="resid")])
    return g


GOLDEN_CASES[("fuse-attention{epilogue=residual}", "epilogue")] = epilogue
