"""Standard ONNX ops, symbolic dims, import-time folding and converter-table dispatch."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from attncc.frontends.onnx_converters import UnsupportedONNXOpError, lookup, supported_ops
from attncc.frontends.onnx_converters.context import ONNXImportError

try:
    from .onnx_helpers import run_ir, run_ort, single_node_model
except ImportError:  # tests/frontends is not a package
    from onnx_helpers import run_ir, run_ort, single_node_model

rng = np.random.default_rng(0)


def _init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def _block_model(opset: int = 18) -> onnx.ModelProto:
    """An LN + MLP + shape-arithmetic block with a symbolic batch, written the way exporters write it."""
    E = 8
    n = helper.make_node
    nodes = [
        n("LayerNormalization", ["x", "ln_w", "ln_b"], ["ln"], epsilon=1e-5),
        n("Shape", ["x"], ["shape"]),
        n("Gather", ["shape", "zero"], ["batch"], axis=0),
        n("Gather", ["shape", "one"], ["seq"], axis=0),
        n("Unsqueeze", ["batch", "axes0"], ["batch1"]),
        n("Unsqueeze", ["seq", "axes0"], ["seq1"]),
        n("Concat", ["batch1", "seq1", "two", "minus1"], ["split_shape"], axis=0),
        n("Reshape", ["ln", "flat"], ["ln2d"]),
        n("Gemm", ["ln2d", "fc_w", "fc_b"], ["fc2d"], transB=1),
        n("Reshape", ["fc2d", "back"], ["fc"]),
        n("Gelu", ["fc"], ["act"]) if opset >= 20 else n("Erf", ["fc"], ["act"]),
        n("Reshape", ["act", "split_shape"], ["heads"]),
        n("Transpose", ["heads"], ["heads_t"], perm=[0, 2, 1, 3]),
        n("Split", ["heads_t", "split_sizes"], ["h0", "h1"], axis=1),
        n("Mul", ["h0", "h1"], ["prod"]),
        n("ReduceMean", ["prod", "axes_last"], ["mean"], keepdims=1),
        n("Abs", ["mean"], ["mean_abs"]),
        n("Sqrt", ["mean_abs"], ["root"]),
        n("Softmax", ["prod"], ["sm"], axis=-1),
        n("Add", ["sm", "root"], ["sum"]),
        n("Slice", ["sum", "s_start", "s_end", "s_axes"], ["sliced"]),
        n("Squeeze", ["sliced", "axes1"], ["squeezed"]),
        n("Cast", ["squeezed"], ["as16"], to=TensorProto.FLOAT16),
        n("Cast", ["as16"], ["y"], to=TensorProto.FLOAT),
    ]
    f32 = np.float32
    inits = [
        _init("ln_w", rng.standard_normal(E).astype(f32)), _init("ln_b", rng.standard_normal(E).astype(f32)),
        _init("fc_w", rng.standard_normal((2 * E, E)).astype(f32)), _init("fc_b", rng.standard_normal(2 * E).astype(f32)),
        _init("zero", np.array(0, np.int64)), _init("one", np.array(1, np.int64)), _init("axes0", np.array([0], np.int64)),
        _init("two", np.array([2], np.int64)), _init("minus1", np.array([-1], np.int64)),
        _init("flat", np.array([-1, E], np.int64)), _init("back", np.array([-1, 5, 2 * E], np.int64)),
        _init("split_sizes", np.array([1, 1], np.int64)), _init("axes_last", np.array([-1], np.int64)),
        _init("s_start", np.array([1], np.int64)), _init("s_end", np.array([np.iinfo(np.int64).max], np.int64)),
        _init("s_axes", np.array([2], np.int64)), _init("axes1", np.array([1], np.int64)),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 5, E])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8])
    g = helper.make_graph(nodes, "block", [x], [y], initializer=inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [18, 20])
def test_encoder_block_matches_onnxruntime_with_symbolic_batch(opset):
    m = _block_model(opset)
    onnx.checker.check_model(m)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    (expected,) = run_ort(m, {"x": x})
    (got,), g = run_ir(m, {"x": x})
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)  # the float16 round trip
    assert g.inputs[0].shape == ("batch", 5, 8)  # dim_param survives
    assert "batch" in g.outputs[0].shape
    kinds = {n.kind for n in g.nodes}
    assert {"LayerNorm", "Linear", "Softmax", "Reduce"} <= kinds
    assert "Shape" not in kinds and not any(n.kind == "Gather" for n in g.nodes)  # shape arithmetic folded


def test_reshape_zero_copies_and_minus_one_infers():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    m = single_node_model("Reshape", {"x": x}, ["y"], initializers={"s": np.array([0, -1], np.int64)},
                          input_names=["x", "s"])
    (got,), g = run_ir(m, {"x": x})
    assert got.shape == (2, 12)
    np.testing.assert_array_equal(got, x.reshape(2, 12))


def test_folded_causal_buffer_from_range_trilu_constant_of_shape():
    """Range/ConstantOfShape/Trilu/Equal on constants fold to one bool buffer at import."""
    n = helper.make_node
    nodes = [n("ConstantOfShape", ["shape"], ["ones"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             n("Trilu", ["ones"], ["tril"], upper=0), n("Equal", ["tril", "zerof"], ["masked"]),
             n("Where", ["masked", "neg", "x"], ["y"])]
    inits = [_init("shape", np.array([4, 4], np.int64)), _init("zerof", np.array(0.0, np.float32)),
             _init("neg", np.array(-1e9, np.float32))]
    graph = helper.make_graph(nodes, "mask", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 4])],
                              [helper.make_empty_tensor_value_info("y")], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((2, 4, 4)).astype(np.float32)
    (got,), g = run_ir(m, {"x": x})
    np.testing.assert_array_equal(got, np.where(np.tril(np.ones((4, 4))) == 0, np.float32(-1e9), x))
    assert [nd.kind for nd in g.nodes if nd.kind != "Constant"] == ["Where"]


def test_softmax_is_dispatched_by_opset_version():
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    m13 = single_node_model("Softmax", {"x": x}, ["y"], opset=13, axis=1)
    (got,), _ = run_ir(m13, {"x": x})
    np.testing.assert_allclose(got, run_ort(m13, {"x": x})[0], rtol=1e-5, atol=1e-6)
    m11 = single_node_model("Softmax", {"x": x}, ["y"], opset=11, axis=1)  # flattens axes 1.. : not per-axis
    with pytest.raises(ONNXImportError, match="only the last axis"):
        run_ir(m11, {"x": x})


def test_unknown_op_error_names_node_domain_opset_and_supported_ops():
    x = rng.standard_normal((2, 3)).astype(np.float32)
    m = single_node_model("Hardmax", {"x": x}, ["y"], opset=13)
    with pytest.raises(UnsupportedONNXOpError) as e:
        run_ir(m, {"x": x})
    msg = str(e.value)
    assert "Hardmax" in msg and "domain 'ai.onnx'" in msg and "opset 13" in msg and "MatMul" in msg


def test_dispatch_checks_the_domain_not_just_the_op_type():
    # GroupQueryAttention exists only in com.microsoft; the same name in ai.onnx must not dispatch there
    with pytest.raises(UnsupportedONNXOpError, match="com.microsoft"):
        lookup("", "GroupQueryAttention", 23, "n")
    # and ai.onnx Attention needs opset >= 23
    with pytest.raises(UnsupportedONNXOpError, match="opset >= 23"):
        lookup("", "Attention", 21, "n")
    assert lookup("ai.onnx", "Attention", 24, "n") is lookup("", "Attention", 23, "n")
    assert lookup("", "Attention", 25, "n") is not lookup("", "Attention", 24, "n")
    assert any("com.microsoft::GroupQueryAttention" in s for s in supported_ops("com.microsoft"))


def test_runtime_shape_argument_is_a_clear_error():
    x = rng.standard_normal((2, 6)).astype(np.float32)
    s = np.array([3, 4], np.int64)
    m = single_node_model("Reshape", {"x": x, "s": s}, ["y"])
    with pytest.raises(ONNXImportError, match="'shape'.*constant"):
        run_ir(m, {"x": x, "s": s})


def test_dropout_inference_and_unused_mask_output():
    x = rng.standard_normal((2, 6)).astype(np.float32)
    m = single_node_model("Dropout", {"x": x}, ["y", "mask"], opset=13)
    m.graph.output.pop()  # the mask output is declared but not read
    (got,), _ = run_ir(m, {"x": x})
    np.testing.assert_array_equal(got, x)
