"""Hand-built IR for transformer layers as a frontend + lift-attention emit them (spelled-out layout
ops, repeat_kv, Rotary, separate or packed projections). Used until tests/models factories land."""
from __future__ import annotations

import numpy as np

from attncc.ir import (Attention, AttentionSpec, Binary, Graph, Linear, MaskSpec, Reshape, RMSNorm, Rotary,
                       Slice, Transpose, LayerNorm, Activation)

SWAP = (0, 2, 1, 3)


def _w(rng, *shape, scale=0.2):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _merge_heads(g: Graph, o, B, S, width, name):
    t = g.add1(Transpose(SWAP), [o], name=f"{name}_merge_t")
    return g.add1(Reshape((B, S, width)), [t], name=f"{name}_merge")


def _split_heads(g: Graph, x, B, S, H, D, name):
    r = g.add1(Reshape((B, S, H, D)), [x], name=f"{name}_split")
    return g.add1(Transpose(SWAP), [r], name=f"{name}_heads")


def _repeat_kv(g: Graph, x, B, Hkv, S, D, rep, name):
    if rep == 1:
        return x
    from attncc.ir import Expand
    r1 = g.add1(Reshape((B, Hkv, 1, S, D)), [x], name=f"{name}_rep_r1")
    e = g.add1(Expand((B, Hkv, rep, S, D)), [r1], name=f"{name}_rep_expand")
    return g.add1(Reshape((B, Hkv * rep, S, D)), [e], name=f"{name}_rep_r2")


def llama_graph(layers=2, B=2, S="S", hidden=32, heads=4, kv_heads=2, head_dim=8, seed=0) -> Graph:
    """Llama-style decoder stack: RMSNorm, q/k/v Linears, RoPE, repeat_kv, causal SDPA, o_proj, SwiGLU MLP."""
    rng = np.random.default_rng(seed)
    g = Graph("llama")
    x = g.add_input("x", "float32", (B, S, hidden))
    cos = g.add_input("cos", "float32", (1, S, head_dim // 2))
    sin = g.add_input("sin", "float32", (1, S, head_dim // 2))
    rep = heads // kv_heads
    for i in range(layers):
        n = f"l{i}"
        h = g.add1(RMSNorm(), [x, g.add_constant(1 + _w(rng, hidden), f"{n}_ln1_w")], name=f"{n}_ln1")
        q = g.add1(Linear(), [h, g.add_constant(_w(rng, hidden, heads * head_dim), f"{n}_wq")], name=f"{n}_q_proj")
        k = g.add1(Linear(), [h, g.add_constant(_w(rng, hidden, kv_heads * head_dim), f"{n}_wk")], name=f"{n}_k_proj")
        v = g.add1(Linear(), [h, g.add_constant(_w(rng, hidden, kv_heads * head_dim), f"{n}_wv")], name=f"{n}_v_proj")
        q = _split_heads(g, q, B, S, heads, head_dim, f"{n}_q")
        k = _split_heads(g, k, B, S, kv_heads, head_dim, f"{n}_k")
        v = _split_heads(g, v, B, S, kv_heads, head_dim, f"{n}_v")
        q = g.add1(Rotary("rotate_half", head_dim), [q, cos, sin], name=f"{n}_q_rope")
        k = g.add1(Rotary("rotate_half", head_dim), [k, cos, sin], name=f"{n}_k_rope")
        k = _repeat_kv(g, k, B, kv_heads, S, head_dim, rep, f"{n}_k")
        v = _repeat_kv(g, v, B, kv_heads, S, head_dim, rep, f"{n}_v")
        spec = AttentionSpec(num_heads=heads, num_kv_heads=heads, head_dim=head_dim, mask=MaskSpec(causal=True))
        o = g.add1(Attention(spec=spec), [q, k, v], name=f"{n}_attn")
        o = _merge_heads(g, o, B, S, heads * head_dim, f"{n}_attn")
        o = g.add1(Linear(), [o, g.add_constant(_w(rng, heads * head_dim, hidden), f"{n}_wo")], name=f"{n}_o_proj")
        x = g.add1(Binary("add"), [x, o], name=f"{n}_resid1")
        h = g.add1(RMSNorm(), [x, g.add_constant(1 + _w(rng, hidden), f"{n}_ln2_w")], name=f"{n}_ln2")
        gate = g.add1(Linear(), [h, g.add_constant(_w(rng, hidden, 2 * hidden), f"{n}_wg")], name=f"{n}_gate")
        up = g.add1(Linear(), [h, g.add_constant(_w(rng, hidden, 2 * hidden), f"{n}_wu")], name=f"{n}_up")
        act = g.add1(Activation("silu"), [gate], name=f"{n}_silu")
        m = g.add1(Binary("mul"), [act, up], name=f"{n}_glu")
        m = g.add1(Linear(), [m, g.add_constant(_w(rng, 2 * hidden, hidden), f"{n}_wdown")], name=f"{n}_down")
        x = g.add1(Binary("add"), [x, m], name=f"{n}_resid2")
    g.set_outputs([x])
    return g


def gpt2_graph(layers=2, B=2, S=6, hidden=32, heads=4, seed=0) -> Graph:
    """GPT-2-style stack: LayerNorm, packed c_attn + Slices, explicit q scaling, constant additive causal mask."""
    rng = np.random.default_rng(seed)
    d = hidden // heads
    g = Graph("gpt2")
    x = g.add_input("x", "float32", (B, S, hidden))
    causal = np.triu(np.full((S, S), np.finfo(np.float32).min, np.float32), 1)[None, None]
    for i in range(layers):
        n = f"l{i}"
        h = g.add1(LayerNorm(), [x, g.add_constant(1 + _w(rng, hidden), f"{n}_ln1_w"),
                                 g.add_constant(_w(rng, hidden), f"{n}_ln1_b")], name=f"{n}_ln1")
        qkv = g.add1(Linear(has_bias=True), [h, g.add_constant(_w(rng, hidden, 3 * hidden), f"{n}_c_attn_w"),
                                             g.add_constant(_w(rng, 3 * hidden), f"{n}_c_attn_b")], name=f"{n}_c_attn")
        q, k, v = (g.add1(Slice(axis=2, start=j * hidden, stop=(j + 1) * hidden), [qkv], name=f"{n}_{c}")
                   for j, c in enumerate("qkv"))
        q, k, v = (_split_heads(g, t, B, S, heads, d, f"{n}_{c}") for t, c in zip((q, k, v), "qkv"))
        q = g.add1(Binary("mul"), [q, g.add_constant(np.array(d ** -0.5, np.float32), f"{n}_qscale")], name=f"{n}_q_scaled")
        spec = AttentionSpec(num_heads=heads, num_kv_heads=heads, head_dim=d, scale=1.0,
                             mask=MaskSpec(input="additive"))
        o = g.add1(Attention(spec=spec), [q, k, v, g.add_constant(causal, f"{n}_bias")], name=f"{n}_attn")
        o = _merge_heads(g, o, B, S, hidden, f"{n}_attn")
        o = g.add1(Linear(has_bias=True), [o, g.add_constant(_w(rng, hidden, hidden), f"{n}_c_proj_w"),
                                           g.add_constant(_w(rng, hidden), f"{n}_c_proj_b")], name=f"{n}_c_proj")
        x = g.add1(Binary("add"), [x, o], name=f"{n}_resid1")
        h = g.add1(LayerNorm(), [x, g.add_constant(1 + _w(rng, hidden), f"{n}_ln2_w"),
                                 g.add_constant(_w(rng, hidden), f"{n}_ln2_b")], name=f"{n}_ln2")
        m = g.add1(Linear(), [h, g.add_constant(_w(rng, hidden, 4 * hidden), f"{n}_fc")], name=f"{n}_fc")
        m = g.add1(Activation("gelu_tanh"), [m], name=f"{n}_gelu")
        m = g.add1(Linear(), [m, g.add_constant(_w(rng, 4 * hidden, hidden), f"{n}_proj")], name=f"{n}_proj")
        x = g.add1(Binary("add"), [x, m], name=f"{n}_resid2")
    g.set_outputs([x])
    return g


def feed(graph: Graph, seed=0, dims=None) -> dict[str, np.ndarray]:
    """Random inputs for `graph` (symbolic dims from `dims`, default 5)."""
    from attncc.ir import dims as D
    rng = np.random.default_rng(seed)
    env = dict(dims or {})
    out = {}
    for v in graph.inputs:
        shape = [d if isinstance(d, int) else D.evaluate(d, {s: env.get(s, 5) for s in D.symbols(d)}) for d in v.shape]
        out[v.name] = rng.standard_normal(shape).astype(np.float32)
    return out
