"""A transformers BERT exported with torch.onnx (legacy exporter) and fused by onnxruntime's transformer
optimizer (EmbedLayerNormalization, com.microsoft Attention, SkipLayerNormalization, BiasGelu) imports,
compiles for cpu and matches onnxruntime on the optimized model."""
from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
ort = pytest.importorskip("onnxruntime")

import attncc  # noqa: E402
from attncc.ir import run_graph  # noqa: E402

HIDDEN, HEADS = 32, 4
FUSED = {"EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu"}


class _LastHidden(torch.nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state


@pytest.fixture(scope="module")
def ort_bert(tmp_path_factory):
    from onnxruntime.transformers.optimizer import optimize_model
    import onnx

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=HEADS,
                                  intermediate_size=64, max_position_embeddings=64)
    cfg._attn_implementation = "eager"
    bert = transformers.BertModel(cfg, add_pooling_layer=False).eval()
    with torch.no_grad():  # fresh LayerNorms are exactly 1 / 0: perturb every weight so each one matters
        for p in bert.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model = _LastHidden(bert).eval()
    d = tmp_path_factory.mktemp("bert")
    ids = torch.randint(0, 100, (2, 8))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(d / "bert.onnx"),
                          input_names=names, output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in names})
        optimized = optimize_model(str(d / "bert.onnx"), model_type="bert", num_heads=HEADS, hidden_size=HIDDEN)
    path = str(d / "bert_opt.onnx")
    optimized.save_model_to_file(path)
    ops = collections.Counter(n.op_type for n in onnx.load(path).graph.node if n.domain == "com.microsoft")
    assert FUSED <= set(ops), ops  # the optimizer really fused: the test exercises the contrib ops
    return path


def _feeds(batch, seq, seed):
    r = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[-1, seq - 3:] = 0  # right padding in the last row
    return {"input_ids": r.integers(0, 100, (batch, seq)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": (np.arange(seq) >= seq // 2).astype(np.int64)[None].repeat(batch, 0)}


def _ort(path, feeds):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def test_ort_optimized_bert_imports_and_matches_onnxruntime(ort_bert):
    graph = attncc.import_model(ort_bert)
    assert len(graph.attention_ops()) == 2
    names = graph.metadata["onnx_inputs"]
    for batch, seq in ((2, 8), (3, 5)):
        feeds = _feeds(batch, seq, seq)
        got = run_graph(graph, {names[k]: v for k, v in feeds.items() if k in names})[0]
        np.testing.assert_allclose(got, _ort(ort_bert, feeds), atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # ~10 s of TVM builds; the import test above runs by default
def test_ort_optimized_bert_compiles_for_cpu_and_matches_onnxruntime(ort_bert, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    compiled = attncc.compile(ort_bert, target="cpu")
    names = compiled.graph.metadata.get("onnx_inputs") or {v.name: v.name for v in compiled.graph.inputs}
    feeds = _feeds(2, 8, 0)
    got = compiled(*[feeds[k] for k in feeds if k in names])
    got = got.numpy() if hasattr(got, "numpy") else np.asarray(got)
    np.testing.assert_allclose(got, _ort(ort_bert, feeds), atol=1e-4, rtol=1e-4)
