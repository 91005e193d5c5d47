"""ONNX frontend: Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (incl. every auto_pad mode)
import as Convolution / Pool and match onnxruntime; unsupported forms name the node and what is supported."""
from __future__ import annotations

import numpy as np
import pytest

from onnx_helpers import run_ir, run_ort, single_node_model

from attncc.frontends.onnx_converters import ONNXImportError

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


CONV = [  # x shape, weight shape, attributes
    ((2, 4, 9, 8), (6, 4, 3, 3), dict(pads=[1, 1, 1, 1], dilations=[2, 1])),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(strides=[2, 1], pads=[0, 1, 2, 0], group=2)),
    ((1, 4, 9, 8), (4, 1, 3, 3), dict(group=4, auto_pad="SAME_UPPER")),  # depthwise (ORT has no dilation with SAME)
    ((1, 3, 9, 8), (5, 3, 3, 3), dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    ((1, 3, 9, 8), (5, 3, 4, 4), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    ((1, 3, 9, 8), (5, 3, 2, 2), dict(strides=[2, 2], auto_pad="VALID")),
    ((2, 8, 12), (8, 4, 5), dict(strides=[2], pads=[2, 2], group=2)),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV)
def test_conv_matches_onnxruntime(case, bias):
    xs, ws, attrs = case
    x, w, b = _rand(*xs), _rand(*ws), _rand(ws[0])
    inits = {"w": w, **({"b": b} if bias else {})}
    model = single_node_model("Conv", {"x": x}, ["y"], initializers=inits,
                              input_names=["x", "w"] + (["b"] if bias else []), **attrs)
    (got,), g = run_ir(model, {"x": x})
    assert [n.op.op_name for n in g.nodes].count("Convolution") == 1
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


POOLS = [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    ("MaxPool", dict(kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 0, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1)),
    ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 2], auto_pad="SAME_LOWER")),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
    ("GlobalAveragePool", {}),
    ("GlobalMaxPool", {}),
]


@pytest.mark.parametrize("op,attrs", POOLS)
def test_pools_match_onnxruntime(op, attrs):
    x = _rand(2, 3, 9, 8)
    model = single_node_model(op, {"x": x}, ["y"], **attrs)
    (got,), _ = run_ir(model, {"x": x})
    want = run_ort(model, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pool1d_matches_onnxruntime():
    x = _rand(2, 3, 11)
    for op in ("MaxPool", "AveragePool"):
        model = single_node_model(op, {"x": x}, ["y"], kernel_shape=[3], strides=[2], pads=[1, 1])
        np.testing.assert_allclose(run_ir(model, {"x": x})[0][0], run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build,match", [
    (lambda: single_node_model("Conv", {"x": _rand(1, 2, 4, 4, 4)}, ["y"], initializers={"w": _rand(2, 2, 3, 3, 3)},
                               input_names=["x", "w"]), "3-D Conv .* not supported; supported: 1-D"),
    (lambda: single_node_model("MaxPool", {"x": _rand(1, 2, 6, 6)}, ["y", "idx"], kernel_shape=[2, 2]),
     "Indices output of MaxPool is not supported"),
    (lambda: single_node_model("ConvTranspose", {"x": _rand(1, 2, 4, 4)}, ["y"], initializers={"w": _rand(2, 2, 3, 3)},
                               input_names=["x", "w"]), "ConvTranspose"),
])
def test_unsupported_forms_name_the_node(build, match):
    with pytest.raises((ONNXImportError, NotImplementedError), match=match) as e:
        run_ir(build(), {"x": np.zeros((1,), np.float32)})
    assert "ONNX node" in str(e.value)
