"""com.microsoft fused norm / activation ops (onnxruntime's transformer optimizer output), checked
against onnxruntime itself, including the optional statistics outputs onnxruntime produces."""
from __future__ import annotations

import numpy as np
import pytest

try:
    from .onnx_helpers import run_ir, run_ort, single_node_model
except ImportError:  # tests/frontends is not a package
    from onnx_helpers import run_ir, run_ort, single_node_model

MS = "com.microsoft"
rng = np.random.default_rng(14)


def _f(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def _check(model, ins, atol=1e-5):
    want = run_ort(model, ins)
    got, g = run_ir(model, ins)
    assert len(got) == len(want)
    for i, (a, e) in enumerate(zip(got, want)):
        assert a.shape == e.shape and a.dtype == e.dtype, (i, a.shape, e.shape)
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-5, err_msg=f"output {i}")
    return g


@pytest.mark.parametrize("skip_shape", [(2, 5, 16), (5, 16)], ids=["full-skip", "broadcast-skip"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_skip_layer_normalization_all_outputs_match_onnxruntime(skip_shape, with_bias):
    ins = {"x": _f(2, 5, 16), "skip": _f(*skip_shape), "gamma": _f(16), "beta": _f(16)}
    if with_bias:
        ins["bias"] = _f(16)
    m = single_node_model("SkipLayerNormalization", ins, ["y", "mean", "inv_std_var", "sum"], domain=MS, epsilon=1e-5)
    g = _check(m, ins)
    assert g.find("LayerNorm") and not g.find("Unknown")


def test_skip_layer_normalization_without_beta_and_single_output():
    ins = {"x": _f(2, 3, 8), "skip": _f(2, 3, 8), "gamma": _f(8)}
    _check(single_node_model("SkipLayerNormalization", ins, ["y"], domain=MS, epsilon=1e-6), ins)


def test_skip_simplified_layer_normalization_matches_onnxruntime():
    ins = {"x": _f(2, 5, 16), "skip": _f(2, 5, 16), "gamma": _f(16), "bias": _f(16)}
    names = ["x", "skip", "gamma", "bias"]
    m = single_node_model("SkipSimplifiedLayerNormalization", ins, ["y", "mean", "inv_std_var", "sum"], domain=MS,
                          epsilon=1e-6, input_names=names)
    del m.graph.output[1]  # `mean` has no meaning for an RMS norm: not a graph output, so not compared
    m.graph.node[0].output[1] = ""
    g = _check(m, ins)
    assert g.find("RMSNorm")


@pytest.mark.parametrize("op,inputs", [
    ("Gelu", ("x",)), ("BiasGelu", ("x", "bias")), ("FastGelu", ("x",)), ("FastGelu", ("x", "bias")),
    ("QuickGelu", ("x",)),
], ids=["gelu", "bias-gelu", "fast-gelu", "fast-gelu-bias", "quick-gelu"])
def test_ms_gelu_family_matches_onnxruntime(op, inputs):
    ins = {n: (_f(2, 4, 12) if n == "x" else _f(12)) for n in inputs}
    _check(single_node_model(op, ins, ["y"], domain=MS), ins, atol=2e-6)


def test_quick_gelu_with_another_alpha():
    ins = {"x": _f(3, 10)}
    g = _check(single_node_model("QuickGelu", ins, ["y"], domain=MS, alpha=1.3), ins, atol=2e-6)
    assert not g.find("Activation") or all(n.op.kind == "sigmoid" for n in g.find("Activation"))


@pytest.mark.parametrize("with_mask", [True, False])
def test_embed_layer_normalization_matches_onnxruntime(with_mask):
    ids = rng.integers(0, 30, (2, 7)).astype(np.int32)
    seg = rng.integers(0, 2, (2, 7)).astype(np.int32)
    ins = {"ids": ids, "seg": seg}
    inits = {"word": _f(30, 16), "pos": _f(12, 16), "segment": _f(2, 16), "gamma": _f(16), "beta": _f(16)}
    names = ["ids", "seg", "word", "pos", "segment", "gamma", "beta"]
    if with_mask:
        ins["mask"] = np.array([[1] * 7, [1] * 4 + [0] * 3], np.int32)
        names.append("mask")
    m = single_node_model("EmbedLayerNormalization", ins, ["y", "mask_index", "embedding_sum"], domain=MS,
                          initializers=inits, input_names=names, epsilon=1e-12)
    _check(m, ins)
