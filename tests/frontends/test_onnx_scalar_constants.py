"""ONNX import details the torch exporters rely on. Scalar (0-d) initializers keep rank 0: a Gather with a scalar index drops the axis, as onnxruntime does
(the dynamo exporter writes BLOOM's `fused_qkv[..., 0, :]` selects this way; a (1,) index kept the axis and a later
Transpose failed on the extra dim). InstanceNormalization (GroupNorm as both exporters write it) matches
onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from onnx_helpers import run_ir, run_ort, single_node_model


@pytest.mark.parametrize("axis", [0, 2, -1])
def test_gather_with_scalar_index_initializer_drops_the_axis(axis):
    x = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    m = single_node_model("Gather", {"x": x}, ["y"], initializers={"i": np.array(1, np.int64)},
                          input_names=["x", "i"], axis=axis)
    (got,), _ = run_ir(m, {"x": x})
    (want,) = run_ort(m, {"x": x})
    assert got.shape == want.shape == x.shape[:axis % 4] + x.shape[axis % 4 + 1:]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 4, 3, 5)])
def test_instance_normalization_matches_onnxruntime(shape):
    r = np.random.default_rng(1)
    x = (r.standard_normal(shape) * 3 + 1).astype(np.float32)
    scale, bias = r.standard_normal(shape[1]).astype(np.float32), r.standard_normal(shape[1]).astype(np.float32)
    m = single_node_model("InstanceNormalization", {"x": x}, ["y"], initializers={"s": scale, "b": bias},
                          input_names=["x", "s", "b"], epsilon=1e-3)
    (got,), _ = run_ir(m, {"x": x})
    np.testing.assert_allclose(got, run_ort(m, {"x": x})[0], rtol=1e-4, atol=1e-5)
