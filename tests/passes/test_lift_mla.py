"""lift-mla on transformers' DeepSeek-V3 (tests/models/hf_zoo.py: tiny config, real model code): the lifted MHA
sites (qk dim nope+rope = 12, v dim 8, K/V expanded from kv_b_proj and a broadcast k_pe) become the MLA feature
(latent 16, rope 4, 4 heads, one shared KV head), the IR and the cpu build still match eager torch (fp32,
rtol 1e-4), and the cost report's KV cache per token drops from H * (Dk + Dv) to latent + rope. A spelling that
shares kv_b_proj but gives every head its own RoPE key is not MLA: it stays MHA and says why in graph.diagnostics.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers", reason="transformers ships DeepseekV3ForCausalLM, the model lift-mla reads")
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from torch_helpers import eager_outputs, import_torch, run_graph  # noqa: E402

import attncc  # noqa: E402
from attncc.ir.passes import run_pipeline  # noqa: E402
from tests.models.hf_zoo import make_deepseek_v3  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
H, LATENT, ROPE, NOPE, DV = 4, 16, 4, 8, 8   # make_deepseek_v3's config
WITHOUT_LIFT_MLA = attncc.pipelines.default_pipeline("cpu").replace("lift-mla,", "")


@pytest.fixture(scope="module")
def deepseek():
    model, inputs, sites = make_deepseek_v3("sdpa")
    return model, inputs, sites, import_torch(model, inputs)


def _close(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), w, rtol=RTOL, atol=ATOL)


def _assert_mla_sites(graph, sites: int) -> None:
    specs = [n.spec for n in graph.attention_ops()]
    assert len(specs) == sites, [s.summary() for s in specs]
    for s in specs:
        mla = s.kv_source
        assert mla is not None and mla.kind == "mla", s.summary()
        assert (mla.latent_dim, mla.rope_dim) == (LATENT, ROPE), s.summary()
        assert (s.num_heads, s.num_kv_heads, s.head_dim, s.v_head_dim) == (H, 1, NOPE + ROPE, DV), s.summary()
        assert s.scale == pytest.approx((NOPE + ROPE) ** -0.5) and s.mask.causal, s.summary()


def test_deepseek_v3_sites_become_mla_and_match_eager(deepseek):
    model, inputs, sites, graph = deepseek
    lifted = run_pipeline(graph.copy(), "canonicalize,constant-fold,lift-attention,lift-mla")
    _assert_mla_sites(lifted, sites)
    assert all(n.spec.kv_source.absorbed is False for n in lifted.attention_ops())   # naive form first
    assert not [d for d in lifted.diagnostics if d.get("kind") == "mla-not-lifted"]
    want = eager_outputs(model, inputs)
    _close(run_graph(lifted, [t.numpy() for t in inputs]), want)
    optimized = attncc.optimize(graph, "cpu")   # the default pipeline, mla-absorb included
    _assert_mla_sites(optimized, sites)
    _close(run_graph(optimized, [t.numpy() for t in inputs]), want)


def test_cost_report_kv_per_token_drops_to_the_latent(deepseek):
    _, _, sites, graph = deepseek
    mla = attncc.analyze(attncc.optimize(graph, "cpu"), hardware="host-cpu")
    mha = attncc.analyze(attncc.optimize(graph, "cpu", passes=WITHOUT_LIFT_MLA), hardware="host-cpu")
    fp32 = 4
    assert mla.kv_bytes_per_token == sites * (LATENT + ROPE) * fp32          # 2 layers x 20 floats
    assert mha.kv_bytes_per_token == sites * H * (NOPE + ROPE + DV) * fp32   # 2 layers x 4 heads x 20 floats


@pytest.mark.slow
def test_deepseek_v3_mla_compiles_for_cpu_and_matches_eager(deepseek, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))   # really build
    model, inputs, sites, graph = deepseek
    compiled = attncc.compile(graph, inputs, target="cpu")
    assert not [d for d in compiled.diagnostics if d["kind"] == "lowering"]
    _assert_mla_sites(compiled.graph, sites)
    got = compiled(*inputs)
    _close(got if isinstance(got, (tuple, list)) else (got,), eager_outputs(model, inputs))


class PerHeadRopeKey(torch.nn.Module):
    """DeepSeek's K/V spelling except that k_pe has one RoPE key per head (its own projection): not a latent
    KV source, so lift-mla must leave the op as MHA and say why."""

    def __init__(self, d=32):
        super().__init__()
        self.kv_a = torch.nn.Linear(d, LATENT, bias=False)
        self.kv_b = torch.nn.Linear(LATENT, H * (NOPE + DV), bias=False)
        self.q = torch.nn.Linear(d, H * (NOPE + ROPE), bias=False)
        self.k_pe = torch.nn.Linear(d, H * ROPE, bias=False)

    def forward(self, x):
        B, S, _ = x.shape
        q = self.q(x).view(B, S, H, NOPE + ROPE).transpose(1, 2)
        kv = self.kv_b(self.kv_a(x)).view(B, S, H, NOPE + DV).transpose(1, 2)
        k_nope, v = kv.split([NOPE, DV], dim=-1)
        k = torch.cat([k_nope, self.k_pe(x).view(B, S, H, ROPE).transpose(1, 2)], dim=-1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


def test_per_head_rope_key_stays_mha_with_a_reason():
    torch.manual_seed(0)
    model, x = PerHeadRopeKey().eval(), torch.randn(2, 6, 32)
    graph = run_pipeline(import_torch(model, (x,)), "canonicalize,constant-fold,lift-attention,lift-mla")
    (site,) = graph.attention_ops()
    assert site.spec.kv_source is None and site.spec.num_kv_heads == H
    (why,) = [d for d in graph.diagnostics if d.get("kind") == "mla-not-lifted"]
    assert why["node"] == site.name and "broadcast" in why["reason"], why
    _close(run_graph(graph, [x.numpy()]), eager_outputs(model, (x,)))
