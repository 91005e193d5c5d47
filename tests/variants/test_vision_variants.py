"""Vision-family attention variants (issue 26 item 4b-d), on their timm 1.0.31 module code (tests/variants/
vision_modules.py): ConViT's GPSA is lifted (score_mods=gated_positional), CoaT's key-softmax factorized attention
(kv_source=linear(feature_map="key_softmax")); both equal eager through the lifted graph, its decomposition and the
cpu build. MViTv2's decomposed relative position is not lifted and the diagnostics name the part of the pattern that
stopped the match; MViTv2's pooled K/V alone lifts as attention over the pooled keys."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from attncc.frontends.torch_import import import_torch
from attncc.ir import run_graph
from attncc.ir.ops.attention_features import GatedPositional, LinearAttn
from attncc.ir.passes import run_pipeline

from .vision_modules import GPSA, FactorAttn, MultiScaleAttention

SLOW = os.environ.get("ATTNCC_TESTS_SLOW") == "1"


def _eager(model, x):
    with torch.no_grad():
        return model(x).numpy()


def _not_lifted(g) -> str:
    (d,) = [d for d in g.diagnostics if d["kind"] == "attention-not-lifted"]
    return d["reason"]


def test_convit_gpsa_is_lifted_as_gated_positional():
    torch.manual_seed(0)
    model, x = GPSA(32, 4).eval(), torch.randn(2, 16, 32)
    g = import_torch(model, (x,))
    assert not g.find("Softmax"), g.diagnostics
    (att,) = g.attention_ops()
    spec = att.op.spec
    assert spec.score_mods == (GatedPositional(renormalize=True),) and spec.num_heads == 4, spec.summary()
    named = att.op.named_inputs(att)
    gate = g.constants[named["content_gate"].producer.op.key]
    np.testing.assert_allclose(gate, 1 - torch.sigmoid(model.gating_param).detach().numpy(), rtol=1e-6)
    assert tuple(named["pos_attention"].shape) == (1, 4, 16, 16)      # one map, not expanded over the batch
    want = _eager(model, x)
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], want, rtol=1e-5, atol=1e-6)
    plain = run_pipeline(g, "decompose-variants,constant-fold,dce")
    assert not any(n.op.spec.features_list() for n in plain.attention_ops())
    np.testing.assert_allclose(run_graph(plain, [x.numpy()])[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not SLOW, reason="cpu build ~15 s: -m slow")
@pytest.mark.slow
def test_convit_gpsa_cpu_build_matches_eager():
    import attncc
    torch.manual_seed(0)
    model, x = GPSA(32, 4).eval(), torch.randn(2, 16, 32)
    compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.graph.attention_ops()[0].op.spec.score_mods[0].kind == "gated_positional"
    out = compiled(x)
    np.testing.assert_allclose(np.asarray(out[0] if isinstance(out, (list, tuple)) else out), _eager(model, x),
                               rtol=1e-4, atol=1e-5)


def test_coat_factorized_attention_is_lifted_as_key_softmax_linear_attention():
    torch.manual_seed(0)
    model, x = FactorAttn(32, 4).eval(), torch.randn(2, 9, 32)
    g = import_torch(model, (x,))
    assert not g.find("Softmax"), g.diagnostics
    (att,) = g.attention_ops()
    spec = att.op.spec
    assert spec.kv_source == LinearAttn("linear", "key_softmax", False) and not spec.mask.causal, spec.summary()
    assert spec.scale == pytest.approx(model.scale)
    want = _eager(model, x)
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], want, rtol=1e-5, atol=1e-6)
    plain = run_pipeline(g, "decompose-variants,constant-fold,dce")
    assert not any(n.op.spec.features_list() for n in plain.attention_ops())
    np.testing.assert_allclose(run_graph(plain, [x.numpy()])[0], want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not SLOW, reason="cpu build: -m slow")
@pytest.mark.slow
def test_coat_factorized_attention_cpu_build_matches_eager():
    import attncc
    torch.manual_seed(0)
    model, x = FactorAttn(32, 4).eval(), torch.randn(2, 9, 32)
    out = attncc.compile(model, (x,), target="cpu")(x)
    np.testing.assert_allclose(np.asarray(out[0] if isinstance(out, (list, tuple)) else out), _eager(model, x),
                               rtol=1e-4, atol=1e-5)


def test_mvitv2_decomposed_relative_position_is_named_in_the_diagnostics():
    torch.manual_seed(0)
    model, x = MultiScaleAttention().eval(), torch.randn(2, 16, 32)
    g = import_torch(model, (x,))
    assert not g.attention_ops()
    reason = _not_lifted(g)
    assert "rank-6 sum (2, 2, 4, 4, 2, 2)" in reason and "decomposed relative position" in reason
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], _eager(model, x), rtol=1e-5, atol=1e-5)


class PooledOnly(MultiScaleAttention):
    """MViTv2's pooled K/V with rel_pos_type != 'spatial' (no decomposed relative position)."""

    def forward(self, x):
        B, N, _ = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(dim=0)
        k, v = self._pool(k, self.pool_k, self.norm_k), self._pool(v, self.pool_v, self.norm_v)
        x = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v + q
        return self.proj(x.transpose(1, 2).reshape(B, N, -1))


def test_mvitv2_pooled_kv_lifts_over_the_pooled_keys():
    torch.manual_seed(0)
    model, x = PooledOnly().eval(), torch.randn(2, 16, 32)
    g = import_torch(model, (x,))
    (att,) = g.attention_ops()
    named = att.op.named_inputs(att)
    assert named["query"].shape[2] == 16 and named["key"].shape[2] == 4   # 4x4 tokens attend 2x2 pooled keys
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], _eager(model, x), rtol=1e-5, atol=1e-5)
