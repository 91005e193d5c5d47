"""ONNX CumSum (ai.onnx 11+) imports as the IR CumSum and matches onnx's reference evaluator for every
exclusive/reverse combination, negative and int32 axes, integer data and a symbolic batch dim."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from attncc.frontends.onnx_converters.context import ONNXImportError

try:
    from .onnx_helpers import run_ir
except ImportError:  # tests/frontends is not a package
    from onnx_helpers import run_ir


def _model(axis, exclusive=0, reverse=0, elem=TensorProto.FLOAT, shape=("batch", 4, 5), axis_as_input=False):
    node = helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)
    inputs = [helper.make_tensor_value_info("x", elem, shape)]
    inits = []
    if axis_as_input:  # a run-time axis: not supported, must fail clearly
        inputs.append(helper.make_tensor_value_info("axis", TensorProto.INT64, []))
    else:
        inits.append(onnx.numpy_helper.from_array(np.asarray(axis), "axis"))
    graph = helper.make_graph([node], "cumsum", inputs, [helper.make_empty_tensor_value_info("y")], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [np.int64(1), np.int32(-1), np.int64(0)])  # 0: the symbolic axis
def test_cumsum_matches_onnx_reference(axis, exclusive, reverse):
    model = _model(axis, exclusive, reverse)
    for batch in (1, 3):  # the batch dim stays symbolic
        x = np.random.default_rng(batch).standard_normal((batch, 4, 5)).astype(np.float32)
        (want,) = ReferenceEvaluator(model).run(None, {"x": x})
        (got,), graph = run_ir(model, {"x": x})
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    (node,) = graph.find("CumSum")
    assert node.op.exclusive == bool(exclusive) and node.op.reverse == bool(reverse)
    assert graph.inputs[0].shape == ("batch", 4, 5)


def test_integer_cumsum_is_exact():
    model = _model(np.int64(0), exclusive=1, elem=TensorProto.INT64, shape=(6, 2))
    x = np.random.default_rng(0).integers(-5, 5, (6, 2)).astype(np.int64)
    (want,) = ReferenceEvaluator(model).run(None, {"x": x})
    (got,), _ = run_ir(model, {"x": x})
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_runtime_axis_is_a_clear_error():
    with pytest.raises(ONNXImportError, match=r"input 1 \('axis'\) must be a constant"):
        run_ir(_model(None, axis_as_input=True), {"x": np.zeros((1, 4, 5), np.float32), "axis": np.int64(0)})


def test_axis_out_of_range_is_a_clear_error():
    with pytest.raises(ONNXImportError, match=r"axis 3 is out of range for rank 3"):
        run_ir(_model(np.int64(3)), {"x": np.zeros((1, 4, 5), np.float32)})
