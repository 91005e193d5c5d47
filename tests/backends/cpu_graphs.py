"""IR graphs used by the cpu backend tests (built with the IR builder)."""
from __future__ import annotations

import numpy as np

from attncc import ir
from attncc.ir.ops import (Activation, Attention, AttentionSpec, Binary, Concat, Expand, Gather, LayerNorm, Linear,
                           MaskSpec, MatMul, Reduce, Reshape, RMSNorm, Slice, Softmax, Transpose, Unary, Where, Cast)
from attncc.ir.ops.attention_spec import RopeSpec


def rng_arrays(graph: ir.Graph, seed: int = 0, shapes=None) -> list[np.ndarray]:
    """Random inputs for `graph` (symbolic dims from `shapes`, a dict symbol -> size)."""
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        shape = [ir.dims.evaluate(d, shapes or {}) for d in v.shape]
        if v.dtype == "bool":
            out.append(rng.random(shape) > 0.3)
        elif v.dtype.startswith("int"):
            out.append(rng.integers(0, 8, shape).astype(v.dtype))
        else:
            out.append(rng.standard_normal(shape).astype(np.float32).astype(ir.types.numpy_dtype(v.dtype)))
    return out


def mlp_block(dtype: str = "float32") -> ir.Graph:
    """Linear+bias+gelu -> LayerNorm -> Linear (no bias) + residual -> Softmax -> Reduce."""
    rng = np.random.default_rng(1)
    npd = ir.types.numpy_dtype(dtype)
    g = ir.Graph("mlp")
    x = g.add_input("x", dtype, ("batch", 24, 64))
    w1 = g.add_constant((rng.standard_normal((64, 96)) * 0.1).astype(npd), "w1")
    b1 = g.add_constant(rng.standard_normal(96).astype(npd), "b1")
    w2 = g.add_constant((rng.standard_normal((96, 64)) * 0.1).astype(npd), "w2")
    h = g.add1(Linear(has_bias=True), [x, w1, b1], name="fc1")
    h = g.add1(Activation("gelu"), [h], name="act")
    h = g.add1(LayerNorm(has_weight=False, has_bias=False), [h], name="ln")
    y = g.add1(Linear(), [h, w2], name="fc2")
    y = g.add1(Binary("add"), [y, x], name="residual")
    s = g.add1(Softmax(-1), [y], name="probs")
    r = g.add1(Reduce("mean", (1,), keepdims=False), [s], name="pool")
    g.set_outputs([y, r])
    return g


def layout_ops() -> ir.Graph:
    """Reshape/Transpose/Concat/Slice/Gather/Expand/Where/Unary/Cast/MatMul chain."""
    g = ir.Graph("layout")
    x = g.add_input("x", "float32", (2, 8, 12))
    idx = g.add_input("idx", "int64", (5,))
    table = g.add_constant(np.arange(40, dtype=np.float32).reshape(10, 4) / 7.0, "table")
    r = g.add1(Reshape((2, 8, 3, 4)), [x])
    t = g.add1(Transpose((0, 2, 1, 3)), [r])                       # (2, 3, 8, 4)
    c = g.add1(Concat(axis=-1), [t, g.add1(Unary("exp"), [t])])   # (2, 3, 8, 8)
    s = g.add1(Slice(axis=2, start=1, stop=7, step=2), [c])       # (2, 3, 3, 8)
    e = g.add1(Gather(axis=0), [table, idx])                      # (5, 4)
    big = g.add1(Expand((2, 5, 4)), [e])
    cond = g.add1(Binary("gt"), [big, g.add_constant(np.array(1.5, np.float32), "thr")])
    w = g.add1(Where(), [cond, big, g.add1(Unary("neg"), [big])])
    mm = g.add1(MatMul(), [g.add1(Transpose((0, 2, 1)), [w]), w])  # (2, 4, 4)
    cast = g.add1(Cast("float16"), [mm])
    g.set_outputs([s, cast])
    return g


def attention_graph(hq=4, hkv=4, sq=32, skv=32, d=32, causal=False, mask="none", kv_cache=False, rope=False,
                    window=None, softcap=None, layout="bhsd", kv_lengths=False, dtype="float32",
                    alignment="bottom_right", mask_shape=None) -> ir.Graph:
    """One Attention op with the requested features; inputs named by the spec."""
    spec = AttentionSpec(num_heads=hq, num_kv_heads=hkv, head_dim=d, softcap=softcap,
                         mask=MaskSpec(causal=causal, alignment=alignment, window_left=window, input=mask,
                                       kv_lengths=kv_lengths),
                         rope=RopeSpec("rotate_half", d) if rope else None, kv_cache=kv_cache, layout=layout)
    g = ir.Graph("attn")
    B = 2
    new_kv = skv - 8 if kv_cache else skv

    def shp(h, s, dd):
        return (B, h, s, dd) if layout == "bhsd" else (B, s, h, dd)

    ins = {"query": g.add_input("q", dtype, shp(hq, sq, d)), "key": g.add_input("k", dtype, shp(hkv, new_kv, d)),
           "value": g.add_input("v", dtype, shp(hkv, new_kv, d))}
    if mask != "none":
        ins["mask"] = g.add_input("mask", "bool" if mask == "bool" else dtype, mask_shape or (B, 1, sq, skv))
    if kv_lengths:
        ins["kv_lengths"] = g.add_input("kv_lengths", "int64", (B,))
    if kv_cache:
        ins["past_key"] = g.add_input("past_k", dtype, shp(hkv, 8, d))
        ins["past_value"] = g.add_input("past_v", dtype, shp(hkv, 8, d))
    if rope:
        ins["rope_cos"] = g.add_input("cos", dtype, (1, sq, d // 2))
        ins["rope_sin"] = g.add_input("sin", dtype, (1, sq, d // 2))
    outs = g.add(Attention(spec=spec), [ins[n] for n in spec.input_names()], name="attn")
    g.set_outputs(list(outs))
    return g


def llama_block(hidden=512, heads=8, kv_heads=2, seq=256, ffn=1376, dtype="float32", batch=1) -> ir.Graph:
    """A Llama decoder block in IR: RMSNorm, q/k/v Linear, RoPE inside the Attention op (causal GQA),
    o_proj + residual, RMSNorm, SwiGLU MLP + residual."""
    rng = np.random.default_rng(0)
    npd = ir.types.numpy_dtype(dtype)
    d = hidden // heads
    g = ir.Graph("llama_block")
    x = g.add_input("x", dtype, (batch, seq, hidden))
    cos = g.add_input("cos", dtype, (1, seq, d // 2))
    sin = g.add_input("sin", dtype, (1, seq, d // 2))

    def w(i, o, name):
        return g.add_constant((rng.standard_normal((i, o)) / np.sqrt(i)).astype(npd), name)

    n1 = g.add1(RMSNorm(eps=1e-6), [x, g.add_constant(np.ones(hidden, npd), "ln1")], name="attn_norm")
    heads_of = {"q": heads, "k": kv_heads, "v": kv_heads}
    proj = {}
    for name, h in heads_of.items():
        y = g.add1(Linear(), [n1, w(hidden, h * d, f"w{name}")], name=f"{name}_proj")
        y = g.add1(Reshape((batch, seq, h, d)), [y])
        proj[name] = g.add1(Transpose((0, 2, 1, 3)), [y], name=f"{name}_heads")
    spec = AttentionSpec(num_heads=heads, num_kv_heads=kv_heads, head_dim=d, mask=MaskSpec(causal=True),
                         rope=RopeSpec("rotate_half", d))
    a = g.add1(Attention(spec=spec), [proj["q"], proj["k"], proj["v"], cos, sin], name="attn")
    a = g.add1(Transpose((0, 2, 1, 3)), [a], name="attn_merge")
    a = g.add1(Reshape((batch, seq, hidden)), [a])
    h1 = g.add1(Binary("add"), [g.add1(Linear(), [a, w(hidden, hidden, "wo")], name="o_proj"), x], name="res1")
    n2 = g.add1(RMSNorm(eps=1e-6), [h1, g.add_constant(np.ones(hidden, npd), "ln2")], name="mlp_norm")
    gate = g.add1(Activation("silu"), [g.add1(Linear(), [n2, w(hidden, ffn, "wg")], name="gate_proj")])
    up = g.add1(Linear(), [n2, w(hidden, ffn, "wu")], name="up_proj")
    down = g.add1(Linear(), [g.add1(Binary("mul"), [gate, up]), w(ffn, hidden, "wd")], name="down_proj")
    g.set_outputs([g.add1(Binary("add"), [down, h1], name="res2")])
    return g
