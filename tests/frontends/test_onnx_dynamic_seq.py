"""ONNX files with dynamic batch and sequence dims (torch.onnx.export dynamo=True / legacy dynamic_axes): the
shape arithmetic over the named dims (Shape -> Gather -> Concat -> Reshape, Range, Expand, symbolic Slice ends,
GatherND/GatherElements over symbolic axes) imports; the graph keeps the named dims, matches eager torch at
lengths other than the export's, and `attncc.analyze(..., seq=, batch=)` prices every op at the bound sizes.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from onnx_helpers import run_ort
from torch_helpers import eager_outputs, run_graph

import attncc
from attncc.frontends.onnx_import import import_onnx

pytest.importorskip("onnxscript")
pytest.importorskip("transformers")

from tests.models.hf_zoo import HF_ZOO  # noqa: E402


def _positions_model() -> onnx.ModelProto:
    """y = x + Range(0, seq)[None, :, None] - past, with past = Shape(x)[0] (the forms exporters write)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    c = [numpy_init(np.array(1, np.int64), "one"), numpy_init(np.array(0, np.int64), "zero"),
         numpy_init(np.array([0, 2], np.int64), "axes"), numpy_init(np.array([1, -1, 1], np.int64), "three")]
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "one"], ["seq"], axis=0),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        helper.make_node("Range", ["zero", "seq", "one"], ["pos"]),
        helper.make_node("Unsqueeze", ["pos", "axes"], ["pos3"]),
        helper.make_node("Cast", ["pos3"], ["posf"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["seq", "batch"], ["diff"]),
        helper.make_node("Cast", ["diff"], ["difff"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "posf"], ["t"]),
        helper.make_node("Reshape", ["t", "three"], ["t2"]),
        helper.make_node("Sub", ["t2", "difff"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "positions", [x], [y], initializer=c)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def numpy_init(a, name):
    return onnx.numpy_helper.from_array(a, name)


@pytest.mark.parametrize("batch, seq", [(2, 3), (1, 7)])
def test_range_and_shape_scalars_over_symbolic_dims_match_onnxruntime(batch, seq):
    model = _positions_model()
    g = import_onnx(model)
    assert [v.shape for v in g.inputs] == [("batch", "seq", 4)]
    x = np.random.default_rng(0).standard_normal((batch, seq, 4)).astype(np.float32)
    np.testing.assert_allclose(run_graph(g, [x])[0], run_ort(model, {"x": x})[0], rtol=1e-6)


def _export(family: str, exporter: str, path: str):
    model, inputs, sites = HF_ZOO[family]("sdpa")
    try:
        _write(model, inputs, exporter, path)
    except Exception as e:  # the exporter itself gives up: there is no ONNX file for attncc to read
        pytest.skip(f"torch.onnx.export({exporter}) cannot export {family}: {type(e).__name__}: {str(e)[:160]}")
    return model, inputs, sites


def _write(model, inputs, exporter: str, path: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dims = {0: torch.export.Dim("batch", min=1, max=8), 1: torch.export.Dim("seq", min=2, max=64)}
            prog = torch.onnx.export(model, inputs, dynamo=True, opset_version=18, verbose=False,
                                     dynamic_shapes=tuple(dims for _ in inputs))
            prog.save(path)
        else:
            names = [f"in{i}" for i in range(len(inputs))]
            torch.onnx.export(model, inputs, path, dynamo=False, opset_version=17, input_names=names,
                              output_names=["out"], dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})


def _ids(batch: int, seq: int) -> torch.Tensor:
    return torch.randint(3, 64, (batch, seq), generator=torch.Generator().manual_seed(batch * 100 + seq))


def _check_at_other_lengths(model, graph, family: str):
    for batch, seq in ((1, 5), (3, 11)):
        inputs = (_ids(batch, seq),) + ((torch.ones(batch, seq, dtype=torch.int64),) if family == "bert" else ())
        got = run_graph(graph, [t.numpy() for t in inputs])
        np.testing.assert_allclose(got[0], eager_outputs(model, inputs)[0], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def llama_dynamic(tmp_path_factory):
    """HF Llama exported once by the dynamo exporter with dynamic batch and seq: (model, graph)."""
    path = str(tmp_path_factory.mktemp("onnx") / "llama.onnx")
    model, _, sites = _export("llama", "dynamo", path)
    graph = attncc.import_model(path)
    assert len(graph.attention_ops()) == sites
    return model, graph


@pytest.mark.slow
def test_dynamo_export_with_dynamic_batch_and_seq_imports_and_matches_at_other_lengths(llama_dynamic):
    model, graph = llama_dynamic
    assert all(v.shape[:2] == ("batch", "seq") for v in graph.inputs)
    _check_at_other_lengths(model, graph, "llama")


@pytest.mark.slow
def test_dynamo_export_of_an_encoder_with_padding_mask(tmp_path):
    path = str(tmp_path / "bert.onnx")
    model, inputs, sites = _export("bert", "dynamo", path)
    graph = attncc.import_model(path)
    assert all(v.shape[:2] == ("batch", "seq") for v in graph.inputs)
    assert len(graph.attention_ops()) == sites
    _check_at_other_lengths(model, graph, "bert")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["llama", "bert", "gpt2", "qwen2", "mistral", "gemma", "phi3", "roberta"])
@pytest.mark.parametrize("exporter", ["dynamo", "legacy"])
def test_zoo_dynamic_export(family, exporter, tmp_path):
    path = str(tmp_path / f"{family}.onnx")
    model, inputs, sites = _export(family, exporter, path)
    graph = attncc.import_model(path)
    assert len(graph.attention_ops()) == sites
    _check_at_other_lengths(model, graph, "bert" if len(inputs) > 1 else family)


@pytest.mark.slow
def test_report_binds_seq_and_prices_every_op_at_it(llama_dynamic):
    _, graph = llama_dynamic
    rows = {}
    for seq in (16, 64):
        report = attncc.analyze(graph, hardware="h100-sxm", seq=seq, batch=2, per_op=True)
        rows[seq] = {r.name: r for r in report.rows}
    linears = [n for n in rows[16] if rows[16][n].kind in ("Linear", "MatMul")]
    assert linears
    for n in linears:   # every projection scales with the bound sequence length, not the export's (8)
        assert rows[64][n].cost.flops == pytest.approx(4 * rows[16][n].cost.flops, rel=1e-9), n
    decode = attncc.analyze(graph, hardware="h100-sxm", phase="decode", past=64, batch=2, per_op=True)
    dec = {r.name: r for r in decode.rows}
    for n in linears:   # decode: one new token per sequence
        assert dec[n].cost.flops == pytest.approx(rows[16][n].cost.flops / 16, rel=1e-9), n
