"""lift-attention masks: tril/triu buffers sliced by position, constant -inf patterns, Where and
masked_fill, bool/additive mask inputs, (1-m)*-large, softcap, fp16 casts around the softmax."""
import numpy as np
import pytest

from attncc.ir.ops import Concat, Slice, Unary, Where

from .lift_attention_graphs import Cast, Graph, bin_, finish, kt, lift, mm, not_lifted_reason, only_spec, scalar

MIN32 = float(np.finfo(np.float32).min)


def _qkv(g, B=2, H=2, S=4, Skv=None, D=8, dtype="float32"):
    Skv = Skv or S
    return (g.add_input("q", dtype, (B, H, S, D)), g.add_input("k", dtype, (B, H, Skv, D)),
            g.add_input("v", dtype, (B, H, Skv, D)))


def _scaled_scores(g, q, k, scale=0.25):
    return bin_(g, "mul", mm(g, q, kt(g, k), "qk"), scalar(g, scale, q.dtype))


def _buffer_slice(g, buf, rows, cols):
    m = g.add1(Slice(2, rows[0], rows[1]), [buf], name="mask_rows")
    return g.add1(Slice(3, cols[0], cols[1]), [m], name="mask_cols")


def test_causal_from_tril_buffer_slice_top_left():
    g = Graph("attn")
    q, k, v = _qkv(g, S=5)
    buf = g.add_constant(np.tril(np.ones((16, 16), bool))[None, None], "bias")
    m = _buffer_slice(g, buf, (0, 5), (0, 5))
    finish(g, g.add1(Where(), [m, _scaled_scores(g, q, k), scalar(g, MIN32)]), v)
    spec = only_spec(lift(g))
    assert spec.mask.causal and spec.mask.alignment == "top_left" and spec.mask.window_left is None
    assert spec.mask.input == "none"


def test_causal_bottom_right_from_buffer_slice_with_kv_cache():
    """GPT-2 style bias[:, :, past:past+S, :past+S] with Concat(past, new) K/V and returned presents."""
    g = Graph("decode")
    q = g.add_input("q", "float32", (1, 2, "S", 8))
    k_new = g.add_input("k", "float32", (1, 2, "S", 8))
    v_new = g.add_input("v", "float32", (1, 2, "S", 8))
    pk = g.add_input("past_k", "float32", (1, 2, "P", 8))
    pv = g.add_input("past_v", "float32", (1, 2, "P", 8))
    k = g.add1(Concat(2), [pk, k_new], name="present_k")
    v = g.add1(Concat(2), [pv, v_new], name="present_v")
    buf = g.add_constant(np.tril(np.ones((32, 32), bool))[None, None], "bias")
    m = _buffer_slice(g, buf, ("P", "P+S"), (0, "P+S"))
    finish(g, g.add1(Where(), [m, _scaled_scores(g, q, k), scalar(g, MIN32)]), v)
    g.set_outputs([g.outputs[0], k, v])
    after = lift(g, env={"P": 5, "S": 3})
    spec = only_spec(after)
    assert spec.kv_cache and spec.mask.causal and spec.mask.alignment == "bottom_right"
    att = after.attention_ops()[0]
    assert after.outputs[1] is att.outputs[1] and after.outputs[2] is att.outputs[2]
    assert not after.find("Concat")


def test_causal_from_additive_minus_inf_triangular_constant():
    g = Graph("attn")
    q, k, v = _qkv(g, S=6)
    bias = np.triu(np.full((6, 6), -np.inf, np.float32), 1)
    finish(g, bin_(g, "add", _scaled_scores(g, q, k), g.add_constant(bias, "causal_bias")), v)
    spec = only_spec(lift(g))
    assert spec.mask.causal and spec.mask.input == "none"


def test_causal_bottom_right_from_static_constant_mask():
    g = Graph("attn")
    q, k, v = _qkv(g, S=3, Skv=7)
    keep = np.tril(np.ones((3, 7), bool), 4)
    finish(g, g.add1(Where(), [g.add_constant(keep, "keep"), _scaled_scores(g, q, k), scalar(g, -np.inf)]), v)
    spec = only_spec(lift(g))
    assert spec.mask.causal and spec.mask.alignment == "bottom_right"


def test_sliding_window_from_band_buffer():
    g = Graph("attn")
    q, k, v = _qkv(g, S=8)
    i = np.arange(16)
    band = (i[None, :] <= i[:, None]) & (i[None, :] >= i[:, None] - 3)
    m = _buffer_slice(g, g.add_constant(band[None, None], "band"), (0, 8), (0, 8))
    finish(g, g.add1(Where(), [m, _scaled_scores(g, q, k), scalar(g, MIN32)]), v)
    spec = only_spec(lift(g))
    assert spec.mask.causal and spec.mask.window_left == 3


def test_bool_padding_mask_input():
    g = Graph("attn")
    q, k, v = _qkv(g)
    keep = g.add_input("keep", "bool", (2, 1, 1, 4))
    finish(g, g.add1(Where(), [keep, _scaled_scores(g, q, k), scalar(g, -np.inf)]), v)
    spec = only_spec(lift(g))
    assert spec.mask.input == "bool" and not spec.mask.causal


def test_masked_fill_mask_is_inverted():
    """scores.masked_fill(pad, -inf): True marks masked-out keys, so the keep-mask is its negation."""
    g = Graph("attn")
    q, k, v = _qkv(g)
    pad = g.add_input("pad", "bool", (2, 1, 1, 4))
    keep_first = g.add_constant(np.array([False, True, True, True]), "not_first")
    pad = bin_(g, "and", pad, keep_first)  # key 0 always visible
    finish(g, g.add1(Where(), [pad, scalar(g, -np.inf), _scaled_scores(g, q, k)]), v)
    after = lift(g)
    assert only_spec(after).mask.input == "bool"
    assert any(n.op.op_name == "Unary" and n.op.fn == "not" for n in after.nodes)


def test_additive_float_mask_input():
    g = Graph("attn")
    q, k, v = _qkv(g)
    bias = g.add_input("bias", "float32", (2, 1, 4, 4))
    finish(g, bin_(g, "add", bias, _scaled_scores(g, q, k)), v)
    spec = only_spec(lift(g))
    assert spec.mask.input == "additive"


def test_one_minus_mask_times_large_is_an_additive_mask():
    """BERT: (1 - attention_mask) * -10000 added to the scores."""
    g = Graph("attn")
    q, k, v = _qkv(g)
    am = g.add_input("attention_mask", "float32", (2, 1, 1, 4))
    bias = bin_(g, "mul", bin_(g, "sub", scalar(g, 1.0), am), scalar(g, -10000.0))
    finish(g, bin_(g, "add", _scaled_scores(g, q, k), bias), v)
    spec = only_spec(lift(g))
    assert spec.mask.input == "additive" and spec.scale == 0.25


def test_causal_plus_padding_mask():
    g = Graph("attn")
    q, k, v = _qkv(g, S=5)
    buf = g.add_constant(np.tril(np.ones((8, 8), bool))[None, None], "bias")
    s = g.add1(Where(), [_buffer_slice(g, buf, (0, 5), (0, 5)), _scaled_scores(g, q, k), scalar(g, MIN32)])
    pad = g.add_input("pad_bias", "float32", (2, 1, 1, 5))
    finish(g, bin_(g, "add", s, pad), v)
    spec = only_spec(lift(g))
    assert spec.mask.causal and spec.mask.input == "additive"


def test_softcap_then_causal():
    """Gemma-2: scores = 50 * tanh(scores / 50), then the causal mask."""
    g = Graph("attn")
    q, k, v = _qkv(g, S=5)
    s = _scaled_scores(g, q, k, 0.4)
    s = bin_(g, "mul", g.add1(Unary("tanh"), [bin_(g, "div", s, scalar(g, 50.0))]), scalar(g, 50.0))
    bias = np.triu(np.full((5, 5), MIN32, np.float32), 1)
    finish(g, bin_(g, "add", s, g.add_constant(bias, "mask")), v)
    spec = only_spec(lift(g))
    assert spec.softcap == 50.0 and spec.scale == pytest.approx(0.4) and spec.mask.causal


def test_mismatched_softcap_constants_are_not_a_softcap():
    g = Graph("attn")
    q, k, v = _qkv(g)
    s = _scaled_scores(g, q, k)
    s = bin_(g, "mul", g.add1(Unary("tanh"), [bin_(g, "div", s, scalar(g, 30.0))]), scalar(g, 50.0))
    finish(g, s, v)
    assert "tanh" in not_lifted_reason(lift(g))


def test_fp16_casts_around_softmax():
    g = Graph("attn")
    q, k, v = _qkv(g, dtype="float16")
    s = g.add1(Cast("float32"), [_scaled_scores(g, q, k)], name="upcast")
    finish(g, s, v, cast_probs="float16")
    spec = only_spec(lift(g, rtol=2e-2, atol=2e-3))
    assert spec.head_dim == 8


def test_mask_before_softcap_is_refused():
    g = Graph("attn")
    q, k, v = _qkv(g, S=4)
    s = g.add1(Where(), [g.add_constant(np.tril(np.ones((4, 4), bool)), "keep"), _scaled_scores(g, q, k), scalar(g, -np.inf)])
    s = bin_(g, "mul", g.add1(Unary("tanh"), [bin_(g, "div", s, scalar(g, 20.0))]), scalar(g, 20.0))
    finish(g, s, v)
    assert "before the softcap" in not_lifted_reason(lift(g))
