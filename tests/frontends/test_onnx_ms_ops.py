"""com.microsoft attention ops imported into one IR Attention op, checked against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

try:
    from .onnx_helpers import run_ir, run_ort, single_node_model
except ImportError:  # tests/frontends is not a package
    from onnx_helpers import run_ir, run_ort, single_node_model

rng = np.random.default_rng(0)
B, H, KV, D = 2, 4, 2, 16


def _f(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check(model, ins, n_attention=1, atol=2e-5):
    expected = run_ort(model, ins)
    got, g = run_ir(model, ins)
    assert len(g.attention_ops()) == n_attention
    for e, a in zip(expected, got):
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-4)
    return g


def _gqa(S, P, **attrs):
    ins = {"query": _f(B if P == 0 else 1, S, H * D), "key": _f(B if P == 0 else 1, S, KV * D),
           "value": _f(B if P == 0 else 1, S, KV * D)}
    b = ins["query"].shape[0]
    names = ["query", "key", "value", "", ""]
    if P:
        ins["past_key"], ins["past_value"] = _f(b, KV, P, D), _f(b, KV, P, D)
        names[3:5] = ["past_key", "past_value"]
    ins["seqlens_k"] = np.full((b,), P + S - 1, np.int32)
    ins["total_sequence_length"] = np.array(P + S, np.int32)
    names += ["seqlens_k", "total_sequence_length"]
    if attrs.get("do_rotary"):
        ang = _f(32, D // 2)
        ins["cos_cache"], ins["sin_cache"] = np.cos(ang), np.sin(ang)
        names += ["cos_cache", "sin_cache"]
    m = single_node_model("GroupQueryAttention", ins, ["out", "present_key", "present_value"], domain="com.microsoft",
                          input_names=names, num_heads=H, kv_num_heads=KV, **attrs)
    return m, ins


@pytest.mark.parametrize("S,P,attrs", [
    (5, 0, {}), (1, 6, {}), (6, 0, {"local_window_size": 2}), (1, 6, {"local_window_size": 3}),
    (5, 0, {"softcap": 2.0}), (5, 0, {"do_rotary": 1}), (1, 4, {"do_rotary": 1}),
    (4, 0, {"do_rotary": 1, "rotary_interleaved": 1}), (3, 0, {"scale": 0.3}),
], ids=["prompt", "decode", "window-prompt", "window-decode", "softcap", "rope-prompt", "rope-decode",
        "rope-interleaved", "scale"])
def test_group_query_attention_matches_onnxruntime(S, P, attrs):
    m, ins = _gqa(S, P, **attrs)
    g = _check(m, ins)
    spec = g.attention_ops()[0].spec
    assert (spec.num_heads, spec.num_kv_heads, spec.mask.causal) == (H, KV, True)
    if "local_window_size" in attrs:  # ORT's window counts the query's own key
        assert spec.mask.window_left == attrs["local_window_size"] - 1


def test_group_query_attention_rejects_shared_buffer():
    m, ins = _gqa(1, 6)
    from onnx import numpy_helper

    m.graph.input.pop()  # total_sequence_length becomes a constant that disagrees with past + new
    m.graph.initializer.append(numpy_helper.from_array(np.array(16, np.int32), "total_sequence_length"))
    with pytest.raises(Exception, match="shared past/present buffers"):
        run_ir(m, {k: v for k, v in ins.items() if k != "total_sequence_length"})


@pytest.mark.parametrize("case", ["plain", "causal-past", "padding-mask", "bias"])
def test_multi_head_attention_matches_onnxruntime(case):
    S, L, P = 4, 4, 3
    ins = {"query": _f(B, S, H * D), "key": _f(B, L, H * D), "value": _f(B, L, H * D)}
    names = ["query", "key", "value"]
    attrs = {"num_heads": H}
    outs = ["out"]
    if case == "bias":
        ins["bias"] = _f(3 * H * D)
        names.append("bias")
    if case == "padding-mask":
        names += ["", "key_padding_mask"]
        ins["key_padding_mask"] = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int32)
    if case == "causal-past":
        names += ["", "", "", "past_key", "past_value"]
        ins["past_key"], ins["past_value"] = _f(B, H, P, D), _f(B, H, P, D)
        attrs["unidirectional"] = 1
        outs += ["present_key", "present_value"]
    m = single_node_model("MultiHeadAttention", ins, outs, domain="com.microsoft", input_names=names, **attrs)
    _check(m, ins)


@pytest.mark.parametrize("case", ["plain", "causal", "mask-2d", "lengths", "past"])
def test_ms_attention_matches_onnxruntime(case):
    S, hidden = 4, H * D
    ins = {"input": _f(B, S, hidden)}
    inits = {"weight": _f(hidden, 3 * hidden) * 0.2, "bias": _f(3 * hidden)}
    names = ["input", "weight", "bias"]
    attrs = {"num_heads": H}
    outs = ["out"]
    if case == "causal":
        attrs["unidirectional"] = 1
    if case == "mask-2d":
        names.append("mask_index")
        ins["mask_index"] = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], np.int32)
    if case == "lengths":
        names.append("mask_index")
        ins["mask_index"] = np.array([4, 2], np.int32)
    if case == "past":
        names += ["", "past"]
        ins["past"] = _f(2, B, H, 3, D)
        attrs["unidirectional"] = 1
        outs.append("present")
    m = single_node_model("Attention", ins, outs, domain="com.microsoft", input_names=names,
                          initializers=inits, **attrs)
    _check(m, ins)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_ms_rotary_embedding_matches_onnxruntime(interleaved):
    S = 5
    ang = _f(16, D // 2)
    ins = {"input": _f(B, S, H * D), "position_ids": rng.integers(0, 16, (B, S)).astype(np.int64)}
    inits = {"cos_cache": np.cos(ang), "sin_cache": np.sin(ang)}
    m = single_node_model("RotaryEmbedding", ins, ["out"], domain="com.microsoft",
                          input_names=["input", "position_ids", "cos_cache", "sin_cache"], initializers=inits,
                          interleaved=interleaved, num_heads=H)
    _check(m, ins, n_attention=0)
