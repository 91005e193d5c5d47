"""IsNaN (torch's dynamo exporter guards SDPA's softmax rows with it), GatherND / GatherElements on
run-time data, and GatherElements folding on constants (BERT's token_type_ids buffer gathered at
position_ids, which onnx.reference rejects) — checked against onnxruntime."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

try:
    from .onnx_helpers import run_ir, run_ort, single_node_model
except ImportError:  # tests/frontends is not a package
    from onnx_helpers import run_ir, run_ort, single_node_model

rng = np.random.default_rng(9)


def _check(model, ins, atol=1e-6):
    want = run_ort(model, ins)
    got, g = run_ir(model, ins)
    for a, e in zip(got, want):
        assert a.shape == e.shape and a.dtype == e.dtype
        np.testing.assert_allclose(a, e, atol=atol, rtol=1e-5)
    return g


def _isnan_model():
    x = np.array([[1, np.nan, np.inf], [-np.inf, 0, np.nan]], np.float32)
    return single_node_model("IsNaN", {"x": x}, ["y"], opset=17), {"x": x}


def test_isnan_matches_onnxruntime():
    m, ins = _isnan_model()
    g = _check(m, ins)
    assert [n.op.fn for n in g.find("Binary")] == ["ne"]


def test_isnan_on_cpu(tmp_path, monkeypatch):
    """x != x on cpu: TVM's simplifier folded it to False (was a strict xfail); now NaN-aware, vs onnxruntime."""
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    m, ins = _isnan_model()
    got = attncc.compile(m, target="cpu")(ins["x"])
    np.testing.assert_array_equal(np.asarray(got), run_ort(m, ins)[0])
    assert np.asarray(got).sum() == 2


def test_float_and_bool_compares_on_cpu(tmp_path, monkeypatch):
    """NaN through float compares on cpu, vs onnxruntime: Equal/LessOrEqual of a tensor with itself (TVM's
    simplifier folds them to True), Not(Less) (rewritten to GreaterOrEqual, False on NaN), and Equal on bool
    tensors (was an LLVM fcmp on i1 that its verifier rejects)."""
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    OUTS = ("eq", "le", "ge", "beq", "bne", "nlt")
    x = np.array([[1, np.nan, np.inf], [-np.inf, 0, np.nan]], np.float32)
    y = np.array([[1, 2, np.nan], [-np.inf, -1, np.nan]], np.float32)
    nodes = [helper.make_node("Equal", ["x", "x"], ["eq"]), helper.make_node("LessOrEqual", ["x", "x"], ["le"]),
             helper.make_node("GreaterOrEqual", ["x", "y"], ["ge"]), helper.make_node("Less", ["x", "y"], ["lt"]),
             helper.make_node("Equal", ["eq", "lt"], ["beq"]), helper.make_node("Not", ["beq"], ["bne"]),
             helper.make_node("Not", ["lt"], ["nlt"])]
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("x", "y")]
    outs = [helper.make_tensor_value_info(n, TensorProto.BOOL, [2, 3]) for n in OUTS]
    m = helper.make_model(helper.make_graph(nodes, "cmp", vi, outs), opset_imports=[helper.make_opsetid("", 17)])
    want = run_ort(m, {"x": x, "y": y})
    got = attncc.compile(m, target="cpu")(x, y)
    for name, a, e in zip(OUTS, got, want):
        np.testing.assert_array_equal(np.asarray(a), e, err_msg=name)


def test_gather_elements_on_constants_folds_with_shorter_indices():
    """data (1, 12) gathered at (1, 5) positions along axis 1, then used at run time."""
    buf = np.arange(12, dtype=np.float32).reshape(1, 12) * 0.5
    pos = np.array([[3, 1, 4, 1, -2]], np.int64)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    nodes = [helper.make_node("GatherElements", ["buf", "pos"], ["g"], axis=1), helper.make_node("Add", ["x", "g"], ["y"])]
    graph = helper.make_graph(nodes, "ge", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])],
                              initializer=[numpy_helper.from_array(buf, "buf"), numpy_helper.from_array(pos, "pos")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    g = _check(m, {"x": x})
    assert not g.find("Gather")  # folded at import


@pytest.mark.parametrize("axis,idx_shape", [(1, (3, 2, 4)), (0, (2, 4, 4)), (-1, (3, 4, 2))])
@pytest.mark.parametrize("const_idx", [True, False])
def test_gather_elements_on_run_time_data(axis, idx_shape, const_idx):
    data = rng.standard_normal((3, 4, 5)).astype(np.float32)
    n = data.shape[axis]
    idx = rng.integers(-n, n, idx_shape).astype(np.int64)
    ins = {"data": data} if const_idx else {"data": data, "idx": idx}
    m = single_node_model("GatherElements", ins, ["y"], opset=17, axis=axis,
                          initializers={"idx": idx} if const_idx else None, input_names=["data", "idx"])
    _check(m, ins)


@pytest.mark.parametrize("const_idx", [True, False])
def test_gather_nd_on_run_time_data(const_idx):
    """mask[batch_idx, kv_idx] as the dynamo exporter writes it: GatherND with (…, 2) indices."""
    data = rng.standard_normal((2, 6, 3)).astype(np.float32)
    idx = np.stack(np.broadcast_arrays(np.arange(2)[:, None, None], np.arange(-6, 0, 2)[None, None, :]), -1)
    idx = idx.astype(np.int64)
    ins = {"data": data} if const_idx else {"data": data, "idx": idx}
    m = single_node_model("GatherND", ins, ["y"], opset=17, initializers={"idx": idx} if const_idx else None,
                          input_names=["data", "idx"])
    _check(m, ins)


def _dynamo_export(model, args, opset=18):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.onnx.export(model, args, dynamo=True, opset_version=opset, verbose=False).model_proto


def test_dynamo_exported_sdpa_with_a_fully_masked_row_is_lifted():
    torch = pytest.importorskip("torch")

    class SDPA(torch.nn.Module):
        def forward(self, q, k, v, keep):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)

    q, k, v = (torch.randn(2, 4, 6, 8) for _ in range(3))
    keep = torch.rand(6, 6) > 0.4
    keep[2] = False  # softmax of that row is NaN; the exported IsNaN guard zeroes it
    model = _dynamo_export(SDPA(), (q, k, v, keep))
    assert "IsNaN" in {n.op_type for n in model.graph.node}
    ins = {i.name: t.numpy() for i, t in zip(model.graph.input, (q, k, v, keep))}
    g = _check(model, ins, atol=1e-5)
    assert len(g.attention_ops()) == 1 and not g.find("Softmax"), g.diagnostics


def test_dynamo_exported_bert_without_token_type_ids_matches_onnxruntime():
    """transformers' BertEmbeddings gathers its token_type_ids buffer at position_ids (GatherElements on
    constants) and builds the padding mask with GatherND; SDPA is guarded with IsNaN."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  intermediate_size=64, max_position_embeddings=64)
    bert = transformers.BertModel(cfg, add_pooling_layer=False).eval()

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.randint(0, 50, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.int64)
    mask[1, 5:] = 0
    model = _dynamo_export(Wrap().eval(), (ids, mask))
    ops = {n.op_type for n in model.graph.node}
    assert {"GatherElements", "GatherND", "IsNaN"} <= ops, ops
    ins = {model.graph.input[0].name: ids.numpy(), model.graph.input[1].name: mask.numpy()}
    g = _check(model, ins, atol=1e-5)
    assert len(g.attention_ops()) == 1, g.diagnostics
