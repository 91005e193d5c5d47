"""Talking-heads attention (issue 26 item 4a): CaiT's TalkingHeadAttn (timm 1.0.31 timm/models/cait.py, reproduced
below so the test needs no timm) is lifted into one Attention op with head_mixing=talking_heads(pre, post); the
lifted graph, its decomposition (what every backend runs) and the cpu build equal torch eager."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from attncc.frontends.torch_import import import_torch
from attncc.ir import run_graph
from attncc.ir.ops.attention_features import TalkingHeads
from attncc.ir.passes import run_pipeline

SLOW = os.environ.get("ATTNCC_TESTS_SLOW") == "1"


class TalkingHeadAttn(nn.Module):
    """timm 1.0.31 cait.TalkingHeadAttn (dropouts dropped: eval), with switches for the pre / post mixes."""

    def __init__(self, dim, num_heads=8, qkv_bias=False, pre=True, post=True, mask=False):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_l = nn.Linear(num_heads, num_heads)
        self.proj_w = nn.Linear(num_heads, num_heads)
        self.pre, self.post, self.mask = pre, post, mask

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        if self.mask == "before":   # a causal mask under the logit mix: not the talking-heads order
            attn = attn.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf"))
        if self.pre:
            attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.mask == "after":    # decoder-style talking heads: mask after the logit mix
            attn = attn.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf"))
        attn = attn.softmax(dim=-1)
        if self.post:
            attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


def _eager(model, x):
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("pre,post,mask", [(True, True, False), (True, False, "after"), (False, True, False)],
                         ids=["cait", "pre-causal", "post-only"])
def test_cait_talking_heads_is_lifted_and_matches_eager(pre, post, mask):
    torch.manual_seed(0)
    model, x = TalkingHeadAttn(32, 4, pre=pre, post=post, mask=mask).eval(), torch.randn(2, 7, 32)
    g = import_torch(model, (x,))
    assert not g.find("Softmax"), g.diagnostics
    (att,) = g.attention_ops()
    spec = att.op.spec
    assert spec.head_mixing == TalkingHeads(pre=pre, post=post), spec.summary()
    assert spec.mask.causal == bool(mask) and spec.scale == pytest.approx(model.scale)
    named = att.op.named_inputs(att)
    if pre:   # the mix is the model's own proj_l (Linear weight transposed: (H_in, H_out))
        w = g.constants[named["talk_pre"].producer.op.key]
        np.testing.assert_array_equal(w, model.proj_l.weight.detach().numpy().T)
    want = _eager(model, x)
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], want, rtol=1e-5, atol=1e-5)
    plain = run_pipeline(g, "decompose-variants,constant-fold,dce")
    assert not any(n.op.spec.features_list() for n in plain.attention_ops())
    np.testing.assert_allclose(run_graph(plain, [x.numpy()])[0], want, rtol=1e-5, atol=1e-5)


def test_a_mask_under_the_logit_mix_is_named():
    torch.manual_seed(0)
    model, x = TalkingHeadAttn(32, 4, mask="before").eval(), torch.randn(1, 5, 32)
    g = import_torch(model, (x,))
    assert not g.attention_ops()
    (d,) = [d for d in g.diagnostics if d["kind"] == "attention-not-lifted"]
    assert "a mask is applied before the talking-heads logit mix" in d["reason"]


@pytest.mark.skipif(not SLOW, reason="cpu build ~15 s: -m slow")
@pytest.mark.slow
def test_cait_talking_heads_cpu_build_matches_eager():
    import attncc
    torch.manual_seed(0)
    model, x = TalkingHeadAttn(32, 4).eval(), torch.randn(2, 7, 32)
    compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.graph.attention_ops()[0].op.spec.head_mixing.kind == "talking_heads"
    out = compiled(x)
    np.testing.assert_allclose(np.asarray(out[0] if isinstance(out, (list, tuple)) else out), _eager(model, x),
                               rtol=1e-4, atol=1e-5)


def test_cost_rule_adds_the_mixes_and_the_materialized_scores():
    from attncc.cost_models.attention_cost import attention_cost
    from attncc.ir.ops import AttentionSpec
    base = AttentionSpec(num_heads=8, num_kv_heads=8, head_dim=64)
    plain = attention_cost(base, 2, 256, 256, "float32", None, "h100-sxm")
    both = attention_cost(base.replace(head_mixing=TalkingHeads()), 2, 256, 256, "float32", None, "h100-sxm")
    pre = attention_cost(base.replace(head_mixing=TalkingHeads(post=False)), 2, 256, 256, "float32", None, "h100-sxm")
    # two (H, H) mixes per score (2·2·H per head-score) against QK + PV (4·d per head-score): H/d of the core FLOPs
    assert 0 < pre.flops - plain.flops == pytest.approx((both.flops - plain.flops) / 2)
    assert (both.flops - plain.flops) / plain.flops == pytest.approx(8 / 64)
    assert both.bytes[both.main_level] - plain.bytes[plain.main_level] >= 2 * 2 * 8 * 256 * 256 * 4
