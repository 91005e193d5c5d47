"""Position biases as spec fields (issue 26 item 4e): ALiBi, T5 buckets and Swin windows.

Oracles: transformers' own code for the three rules (BLOOM's build_alibi_tensor, T5Attention's
_relative_position_bucket, Swin's relative_position_index), eager torch for MPT-style ALiBi attention
(llm-foundry's gen_slopes / build_alibi_bias, reproduced below). The lifted op has no (B, H, Sq, Skv) mask input;
its decomposition (what every backend runs) and the cpu build match eager; the diagnostics name what stopped a
non-matching bias."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from attncc.cost_models.attention_cost import attention_cost
from attncc.frontends.torch_import import import_torch
from attncc.ir import run_graph
from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features.position_bias import (Alibi, BucketedBias, WindowBias, alibi_slopes, t5_buckets,
                                                            window_index)
from attncc.ir.passes import run_pipeline

E = 48
SLOW = os.environ.get("ATTNCC_TESTS_SLOW") == "1"


# ---- the rules against transformers' code -------------------------------------------------------------------
@pytest.mark.parametrize("heads", [1, 4, 6, 12, 16])
def test_alibi_slopes_are_blooms(heads):
    bloom = pytest.importorskip("transformers.models.bloom.modeling_bloom")
    alibi = bloom.build_alibi_tensor(torch.ones(1, 3), heads, torch.float32)   # (H, 1, 3) = slope·position
    np.testing.assert_allclose(alibi_slopes(heads), alibi[:, 0, 1].numpy(), rtol=1e-6)


@pytest.mark.parametrize("bidirectional,buckets,max_distance", [(True, 32, 128), (False, 32, 128), (True, 8, 16)])
def test_t5_buckets_are_transformers(bidirectional, buckets, max_distance):
    t5 = pytest.importorskip("transformers.models.t5.modeling_t5")
    rel = torch.arange(-300, 301)[None, :] - torch.zeros(1, 1, dtype=torch.long)
    want = t5.T5Attention._relative_position_bucket(rel, bidirectional, buckets, max_distance).numpy()
    np.testing.assert_array_equal(t5_buckets(rel.numpy(), bidirectional, buckets, max_distance), want)


def test_window_index_is_swins():
    swin = pytest.importorskip("transformers.models.swin.modeling_swin")
    for wh, ww in ((3, 3), (2, 4)):
        rel = swin.SwinRelativePositionBias(2, (wh, ww))
        np.testing.assert_array_equal(window_index(wh, ww).reshape(-1), rel.relative_position_index.numpy())


# ---- MPT-style ALiBi attention, lifted ---------------------------------------------------------------------
class MPTAlibiAttention(torch.nn.Module):
    """llm-foundry MPT: slopes from gen_slopes(n_heads, alibi_bias_max), bias arange(1 - S, 1)·slope, causal
    masked_fill with finfo.min (the bias is a constant for a static length)."""

    def __init__(self, heads: int, max_bias: float = 8.0, causal: bool = True):
        super().__init__()
        self.heads, self.max_bias, self.causal = heads, max_bias, causal
        self.qkv, self.out = torch.nn.Linear(E, 3 * E), torch.nn.Linear(E, E)

    def slopes(self):
        n = 2 ** math.ceil(math.log2(self.heads))
        m = torch.arange(1, n + 1, dtype=torch.float32) * (self.max_bias / n)
        s = 1.0 / torch.pow(2, m)
        return torch.cat([s[1::2], s[::2]])[:self.heads] if n != self.heads else s

    def bias(self, n):
        return torch.arange(1 - n, 1, dtype=torch.float32).view(1, 1, 1, n) * self.slopes().view(1, self.heads, 1, 1)

    def forward(self, x):
        b, n, _ = x.shape
        d = E // self.heads
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        w = q @ k.transpose(-1, -2) / math.sqrt(d) + self.bias(n)
        if self.causal:
            w = w.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), torch.finfo(torch.float32).min)
        return self.out((w.softmax(-1) @ v).transpose(1, 2).reshape(b, n, E))


def _eager(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("heads,max_bias,causal", [(6, 8.0, True), (4, 4.0, False)], ids=["h6-causal", "h4-bias4"])
def test_mpt_alibi_is_a_spec_field(heads, max_bias, causal):
    torch.manual_seed(0)
    model, x = MPTAlibiAttention(heads, max_bias, causal).eval(), torch.randn(2, 7, E)
    g = import_torch(model, (x,))
    (att,) = g.attention_ops()
    spec = att.op.spec
    assert spec.score_mods == (Alibi(max_bias=max_bias),) and spec.mask.input == "none", spec.summary()
    assert spec.mask.causal == causal
    assert [d["kind"] for d in g.diagnostics if "position" in d["kind"]] == ["position-bias-lifted"]
    want = _eager(model, x)
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], want, rtol=1e-5, atol=1e-5)
    # what every backend runs: the decomposition into plain attention + the bias built from the closed form
    plain = run_pipeline(g, "decompose-variants,constant-fold,dce")
    assert not any(n.op.spec.features_list() for n in plain.attention_ops())
    np.testing.assert_allclose(run_graph(plain, [x.numpy()])[0], want, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not SLOW, reason="cpu build ~15 s: -m slow")
@pytest.mark.slow
def test_mpt_alibi_cpu_build_matches_eager():
    import attncc
    torch.manual_seed(0)
    model, x = MPTAlibiAttention(6).eval(), torch.randn(2, 7, E)
    compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.graph.attention_ops()[0].op.spec.score_mods[0].kind == "alibi"
    out = compiled(x)
    np.testing.assert_allclose(np.asarray(out[0] if isinstance(out, (list, tuple)) else out), _eager(model, x),
                               rtol=1e-4, atol=1e-5)


# ---- what stops a match -------------------------------------------------------------------------------------
class DenseBiasAttention(MPTAlibiAttention):
    """A learned dense (1, H, S, S) bias: no position rule explains it, so it stays an additive input."""

    def __init__(self, heads, n):
        super().__init__(heads, causal=False)
        self.dense = torch.nn.Parameter(torch.randn(1, heads, n, n))

    def bias(self, n):
        return self.dense


class WrongSlopesAttention(MPTAlibiAttention):
    def slopes(self):
        return torch.linspace(0.1, 0.4, self.heads)


def test_a_dense_learned_bias_stays_an_input_and_the_diagnostic_names_each_rule():
    torch.manual_seed(0)
    model, x = DenseBiasAttention(4, 6).eval(), torch.randn(2, 6, E)
    g = import_torch(model, (x,))
    (att,) = g.attention_ops()
    assert att.op.spec.mask.input == "additive" and not att.op.spec.score_mods
    (d,) = [d for d in g.diagnostics if d["kind"] == "position-bias-not-lifted"]
    assert d["node"] == att.name
    assert "alibi: per-head slopes" in d["reason"]
    assert "bucketed_bias(" in d["reason"] and "takes different values" in d["reason"]
    assert "window_bias(2, 3)" in d["reason"]
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], _eager(model, x), rtol=1e-5, atol=1e-5)


def test_linear_bias_with_non_alibi_slopes_is_named():
    torch.manual_seed(0)
    model, x = WrongSlopesAttention(4, causal=False).eval(), torch.randn(1, 5, E)
    g = import_torch(model, (x,))
    (att,) = g.attention_ops()
    # a bias linear in j - i is still T5-bucketable at this length, but not ALiBi: the reason for alibi is exact
    kinds = [m.kind for m in att.op.spec.score_mods]
    assert "alibi" not in kinds
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], _eager(model, x), rtol=1e-5, atol=1e-5)


# ---- spec checks and the cost rule ---------------------------------------------------------------------------
def test_spec_fields_validate_and_round_trip():
    spec = AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=8, mask=MaskSpec(causal=True),
                         score_mods=(BucketedBias(num_buckets=32, max_distance=128, bidirectional=False),))
    assert spec.input_names() == ("query", "key", "value", "rel_table")
    assert AttentionSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="alibi.max_bias"):
        Alibi(max_bias=-1.0)
    with pytest.raises(ValueError, match="window_bias.window"):
        WindowBias(window=(3,))


def test_cost_rule_prices_a_table_not_a_dense_mask():
    base = AttentionSpec(num_heads=8, num_kv_heads=8, head_dim=64)
    n = 1024
    plain = attention_cost(base, 1, n, n, "float32", None, "h100-sxm")
    alibi = attention_cost(base.replace(score_mods=(Alibi(),)), 1, n, n, "float32", None, "h100-sxm")
    t5 = attention_cost(base.replace(score_mods=(BucketedBias(),)), 1, n, n, "float32", None, "h100-sxm")
    main = plain.main_level
    assert alibi.bytes[main] == plain.bytes[main]                      # ALiBi reads nothing
    assert t5.bytes[main] - plain.bytes[main] == 8 * 32 * 4            # one float32 table of 32 buckets per head
    assert t5.bytes[main] - plain.bytes[main] < 8 * n * n * 4 / 1000   # vs a dense (1, H, S, S) fp32 bias
    assert alibi.vector_flops > plain.vector_flops
