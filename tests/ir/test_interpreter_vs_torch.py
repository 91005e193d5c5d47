"""The reference interpreter equals PyTorch for every op (fp32, rtol 1e-5 unless stated)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc import ir
from attncc.ir import AttentionSpec, MaskSpec, RopeSpec

RNG = np.random.default_rng(0)


def rand(*shape, dtype="float32"):
    return RNG.standard_normal(shape).astype(dtype)


def run1(op, *arrays, consts=()):
    """Build a one-op graph over `arrays` (inputs) and `consts` (constants); run it."""
    g = ir.Graph()
    vals = [g.add_input(f"x{i}", str(a.dtype), a.shape) for i, a in enumerate(arrays)]
    vals += [g.add_constant(c, f"c{i}") for i, c in enumerate(consts)]
    outs = g.add(op, vals)
    g.set_outputs(outs)
    g.verify()
    res = ir.run_graph(g, list(arrays))
    return res[0] if len(res) == 1 else res


def close(a, b, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(np.asarray(a, np.float64), b.detach().double().numpy() if torch.is_tensor(b) else b,
                               rtol=rtol, atol=atol)


T = torch.from_numpy


@pytest.mark.parametrize("fn,ref", [
    ("neg", torch.neg), ("exp", torch.exp), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid), ("abs", torch.abs),
    ("erf", torch.erf), ("sin", torch.sin), ("cos", torch.cos), ("floor", torch.floor), ("ceil", torch.ceil),
])
def test_unary(fn, ref):
    x = rand(3, 5)
    close(run1(ir.Unary(fn), x), ref(T(x)))


@pytest.mark.parametrize("fn,ref", [("sqrt", torch.sqrt), ("rsqrt", torch.rsqrt), ("log", torch.log),
                                    ("reciprocal", torch.reciprocal)])
def test_unary_positive_domain(fn, ref):
    x = np.abs(rand(4, 3)) + 0.1
    close(run1(ir.Unary(fn), x), ref(T(x)))


@pytest.mark.parametrize("fn,ref", [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div),
                                    ("max", torch.maximum), ("min", torch.minimum)])
def test_binary_broadcasting(fn, ref):
    a, b = rand(2, 1, 4), rand(3, 1)
    close(run1(ir.Binary(fn), a, b), ref(T(a), T(b)))


@pytest.mark.parametrize("fn,ref", [("lt", torch.lt), ("ge", torch.ge), ("eq", torch.eq)])
def test_comparisons_return_bool(fn, ref):
    a, b = rand(4, 4), rand(4, 4)
    out = run1(ir.Binary(fn), a, b)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out, ref(T(a), T(b)).numpy())


@pytest.mark.parametrize("kind,ref", [("relu", F.relu), ("gelu", F.gelu), ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")),
                                      ("silu", F.silu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)])
def test_activations(kind, ref):
    x = rand(5, 7)
    close(run1(ir.Activation(kind), x), ref(T(x)))


def test_where():
    c, x, y = rand(3, 4) > 0, rand(3, 4), rand(1, 4)
    close(run1(ir.Where(), c, x, y), torch.where(T(c), T(x), T(y)))


def test_matmul_batched_broadcast():
    a, b = rand(2, 3, 4, 5), rand(3, 5, 6)
    close(run1(ir.MatMul(), a, b), T(a) @ T(b), rtol=1e-5)


def test_linear_with_bias_matches_torch_linear():
    x, w, b = rand(2, 3, 8), rand(6, 8), rand(6)
    close(run1(ir.Linear(has_bias=True), x, consts=(np.ascontiguousarray(w.T), b)), F.linear(T(x), T(w), T(b)))


def test_softmax_any_axis():
    x = rand(2, 3, 4)
    close(run1(ir.Softmax(axis=1), x), torch.softmax(T(x), 1))


def test_layernorm_and_rmsnorm():
    x, w, b = rand(2, 5, 8), rand(8), rand(8)
    close(run1(ir.LayerNorm(eps=1e-5), x, consts=(w, b)), F.layer_norm(T(x), (8,), T(w), T(b), 1e-5), atol=1e-5)
    close(run1(ir.RMSNorm(eps=1e-6), x, consts=(w,)), F.rms_norm(T(x), (8,), T(w), 1e-6), atol=1e-5)


@pytest.mark.parametrize("fn", ["sum", "mean", "max", "min"])
def test_reduce(fn):
    x = rand(3, 4, 5)
    ref = {"sum": lambda t: t.sum((0, 2), keepdim=True), "mean": lambda t: t.mean((0, 2), keepdim=True),
           "max": lambda t: t.amax((0, 2), keepdim=True), "min": lambda t: t.amin((0, 2), keepdim=True)}[fn]
    close(run1(ir.Reduce(fn, axes=(0, 2), keepdims=True), x), ref(T(x)))


def test_layout_ops():
    x = rand(2, 3, 4)
    close(run1(ir.Reshape((3, -1)), x), T(x).reshape(3, -1))
    close(run1(ir.Transpose((2, 0, 1)), x), T(x).permute(2, 0, 1))
    close(run1(ir.Slice(axis=2, start=1, stop=-1, step=1), x), T(x)[:, :, 1:-1])
    close(run1(ir.Slice(axis=1, start=0, stop=None, step=2), x), T(x)[:, ::2])
    close(run1(ir.Expand((4, 2, 3, 4)), x), T(x).expand(4, 2, 3, 4))
    y = rand(2, 5, 4)
    close(run1(ir.Concat(axis=1), x, y), torch.cat([T(x), T(y)], 1))


def test_gather_is_embedding():
    table, idx = rand(10, 4), np.array([[1, 3], [9, 0]], np.int64)
    close(_gather(table, idx), F.embedding(T(idx), T(table)))


def _gather(table, idx):
    g = ir.Graph()
    i = g.add_input("idx", "int64", idx.shape)
    t = g.add_constant(table, "table")
    g.set_outputs([g.add1(ir.Gather(axis=0), [t, i])])
    g.verify()
    return ir.run_graph(g, [idx])[0]


def test_cast_to_bfloat16_and_back_matches_torch_rounding():
    x = rand(64)
    out = run1(ir.Cast("bfloat16"), x)
    ref = T(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(out.astype(np.float32), ref)


@pytest.mark.parametrize("style", ["rotate_half", "interleaved"])
def test_rotary_matches_torch_formula(style):
    b, h, s, d, r = 2, 3, 5, 8, 6
    x, ang = rand(b, h, s, d), rand(1, s, r // 2)
    cos, sin = np.cos(ang), np.sin(ang)
    out = run1(ir.Rotary(style, r), x, cos, sin)
    tx, tc, ts = T(x), T(cos)[:, None], T(sin)[:, None]
    rot, rest = tx[..., :r], tx[..., r:]
    if style == "rotate_half":
        x1, x2 = rot[..., : r // 2], rot[..., r // 2:]
        ref = torch.cat([x1 * tc - x2 * ts, x2 * tc + x1 * ts, rest], -1)
    else:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
        ref = torch.cat([torch.stack([x1 * tc - x2 * ts, x2 * tc + x1 * ts], -1).flatten(-2), rest], -1)
    close(out, ref)


# ---- Attention ---------------------------------------------------------------------------

def sdpa_ref(q, k, v, **kw):
    return F.scaled_dot_product_attention(T(q).double(), T(k).double(), T(v).double(), **kw)


def attn(spec, *arrays):
    return run1(ir.Attention(spec=spec), *arrays)


@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (4, 1)])
def test_attention_mha_gqa_mqa(hq, hkv):
    q, k, v = rand(2, hq, 7, 8), rand(2, hkv, 9, 8), rand(2, hkv, 9, 8)
    spec = AttentionSpec(hq, hkv, 8)
    close(attn(spec, q, k, v), sdpa_ref(q, k, v, enable_gqa=True))


def test_attention_causal_top_left_matches_sdpa_is_causal():
    q, k, v = rand(1, 2, 5, 8), rand(1, 2, 9, 8), rand(1, 2, 9, 8)
    spec = AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True, alignment="top_left"))
    close(attn(spec, q, k, v), sdpa_ref(q, k, v, is_causal=True))


def test_attention_causal_bottom_right_matches_explicit_mask():
    q, k, v = rand(1, 2, 3, 8), rand(1, 2, 7, 8), rand(1, 2, 7, 8)
    spec = AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True, alignment="bottom_right"))
    keep = torch.ones(3, 7, dtype=torch.bool).tril(diagonal=4)
    close(attn(spec, q, k, v), sdpa_ref(q, k, v, attn_mask=keep))


def test_attention_sliding_window():
    q, k, v = rand(1, 2, 10, 8), rand(1, 2, 10, 8), rand(1, 2, 10, 8)
    spec = AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True, window_left=3))
    i, j = torch.arange(10)[:, None], torch.arange(10)[None]
    keep = (j <= i) & (j >= i - 3)
    close(attn(spec, q, k, v), sdpa_ref(q, k, v, attn_mask=keep))


def test_attention_bool_and_additive_masks_and_custom_scale():
    q, k, v = rand(2, 2, 4, 8), rand(2, 2, 6, 8), rand(2, 2, 6, 8)
    keep = RNG.random((2, 1, 4, 6)) > 0.3
    keep[..., 0] = True
    spec = AttentionSpec(2, 2, 8, scale=0.37, mask=MaskSpec(input="bool"))
    close(attn(spec, q, k, v, keep), sdpa_ref(q, k, v, attn_mask=T(keep), scale=0.37))
    bias = rand(1, 2, 4, 6)
    spec = AttentionSpec(2, 2, 8, mask=MaskSpec(input="additive"))
    close(attn(spec, q, k, v, bias), sdpa_ref(q, k, v, attn_mask=T(bias).double()))


def test_attention_fully_masked_row_is_zero():
    q, k, v = rand(1, 1, 2, 4), rand(1, 1, 3, 4), rand(1, 1, 3, 4)
    keep = np.array([[[[True, False, True], [False, False, False]]]])
    out = attn(AttentionSpec(1, 1, 4, mask=MaskSpec(input="bool")), q, k, v, keep)
    assert np.all(out[0, 0, 1] == 0) and np.all(np.isfinite(out))


def test_attention_softcap_before_mask():
    q, k, v = rand(1, 2, 5, 8) * 4, rand(1, 2, 5, 8) * 4, rand(1, 2, 5, 8)
    spec = AttentionSpec(2, 2, 8, softcap=2.0, mask=MaskSpec(causal=True))
    s = T(q).double() @ T(k).double().transpose(-1, -2) / math.sqrt(8)
    s = 2.0 * torch.tanh(s / 2.0)
    s = s.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), float("-inf"))
    close(attn(spec, q, k, v), torch.softmax(s, -1) @ T(v).double())


def test_attention_rope_and_kv_cache_equal_explicit_torch():
    b, hq, hkv, s, past, d, r = 2, 4, 2, 3, 5, 8, 8
    q, k, v = rand(b, hq, s, d), rand(b, hkv, s, d), rand(b, hkv, s, d)
    pk, pv = rand(b, hkv, past, d), rand(b, hkv, past, d)
    ang = rand(1, s, r // 2)
    cos, sin = np.cos(ang), np.sin(ang)
    spec = AttentionSpec(hq, hkv, d, rope=RopeSpec("rotate_half", r), kv_cache=True,
                         mask=MaskSpec(causal=True, alignment="bottom_right"))
    out, pk2, pv2 = attn(spec, q, k, v, pk, pv, cos, sin)
    tc, ts = torch.cat([T(cos)] * 2, -1)[:, None].double(), torch.cat([T(sin)] * 2, -1)[:, None].double()

    def rot(x):
        x = T(x).double()
        return x * tc + torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1) * ts

    kk = torch.cat([T(pk).double(), rot(k)], 2)
    vv = torch.cat([T(pv).double(), T(v).double()], 2)
    keep = torch.ones(s, past + s, dtype=torch.bool).tril(diagonal=past)
    ref = F.scaled_dot_product_attention(rot(q), kk, vv, attn_mask=keep, enable_gqa=True)
    close(out, ref)
    close(pk2, kk)
    close(pv2, vv)


def test_attention_kv_lengths_and_bshd_layout():
    q, k, v = rand(2, 4, 2, 8), rand(2, 6, 2, 8), rand(2, 6, 2, 8)  # (B, S, H, D)
    lens = np.array([6, 3], np.int64)
    spec = AttentionSpec(2, 2, 8, layout="bshd", mask=MaskSpec(kv_lengths=True))
    out = attn(spec, q, k, v, lens)
    keep = torch.arange(6)[None, :] < T(lens)[:, None]
    ref = sdpa_ref(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3),
                   attn_mask=keep[:, None, None, :]).transpose(1, 2)
    close(out, ref)
