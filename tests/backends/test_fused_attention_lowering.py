"""FusedAttention (`fuse-attention{epilogue=...}`) on the cpu target: it crashed the lowering (IndexError on the
bshd output shape, or the (B, H, S, Dv) attention output where (B, S, N) was due). The core now splits it into
the attention kernel + the projection matmul; checked against the reference interpreter on the unfused graph,
with strict=True (no generic/reference fallback allowed)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import attncc
from attncc.backends.core.fused_attention import split_fused_attention
from attncc.ir import run_graph
from attncc.ir.passes import run_pipeline
from attncc.pipelines import default_pipeline
from tests.passes.cases import epilogue
from tests.passes.layers import feed, llama_graph


def _pipeline(epi: str) -> str:
    base = default_pipeline("cpu")
    assert ",fuse-attention," in base
    return base.replace(",fuse-attention,", f",fuse-attention{{epilogue={epi}}},")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))


@pytest.mark.parametrize("epi", ["projection", "residual"])
def test_fused_epilogue_compiles_and_matches_the_interpreter(epi):
    g = epilogue()   # bshd causal attention -> merge heads -> Linear(+bias) -> + residual
    ins = [np.random.default_rng(1).standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    want = run_graph(g, ins)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no FallbackWarning either
        cm = attncc.compile(g, target="cpu", passes=_pipeline(epi), strict=True)
    fused = cm.graph.find("FusedAttention")
    assert len(fused) == 1 and fused[0].op.has_residual == (epi == "residual")
    got = np.asarray(cm(*ins))
    assert got.shape == want.shape == (1, 6, 32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert not cm.executable.notes, cm.executable.notes


@pytest.mark.slow
def test_fused_epilogue_on_a_dynamic_gqa_rope_stack():
    """Two Llama layers (GQA 4/2, RoPE, bhsd), symbolic seq: one shape-generic build serves two lengths."""
    g = llama_graph(layers=2)
    cm = attncc.compile(g, target="cpu", passes=_pipeline("residual"), strict=True)
    assert len(cm.graph.find("FusedAttention")) == 2 and not cm.graph.find("Attention")
    for s in (5, 11):
        ins = feed(g, seed=s, dims={"S": s})
        np.testing.assert_allclose(np.asarray(cm(*ins.values())), run_graph(g, ins)[0], rtol=1e-4, atol=1e-4)


def test_split_keeps_names_and_records_why():
    g = run_pipeline(epilogue(), "canonicalize-attention,fuse-attention{epilogue=residual},dce")
    (fa,) = g.find("FusedAttention")
    split = split_fused_attention(g)
    assert g.find("FusedAttention") and not split.find("FusedAttention")      # a copy; the input is unchanged
    assert split.node_by_name(fa.name).op.op_name == "Attention"
    assert [v.name for v in split.outputs] == [v.name for v in g.outputs]
    assert [n.op.op_name for n in split.topological()][-2:] == ["Linear", "Binary"]
    assert any(d["pass"] == "split-fused-attention" and d["node"] == fa.name for d in split.diagnostics)
    ins = [np.random.default_rng(2).standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    np.testing.assert_allclose(run_graph(split, ins)[0], run_graph(g, ins)[0], rtol=1e-6, atol=1e-6)


def test_split_of_bhsd_gqa_rope_layers_matches_the_fused_graph():
    """The bhsd layout (merge heads needs the transpose), GQA, RoPE, symbolic seq: interpreter only (the cpu
    build of the same stack is the slow test above)."""
    g = run_pipeline(llama_graph(layers=2), "canonicalize-attention,fold-repeat-kv,fuse-attention{epilogue=residual},dce")
    assert len(g.find("FusedAttention")) == 2
    split = split_fused_attention(g)
    assert not split.find("FusedAttention") and len(split.find("Attention")) == 2
    ins = feed(g, seed=3, dims={"S": 7})
    np.testing.assert_allclose(run_graph(split, ins)[0], run_graph(g, ins)[0], rtol=1e-6, atol=1e-6)
