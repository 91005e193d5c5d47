"""lift-attention on two forms models really write (issue #14), numerics against eager PyTorch:

- OPT scales q right after its projection (`q_proj(x) * scaling`) and splits heads afterwards: the factor
  moves into spec.scale instead of staying outside as a Mul.
- BLOOM adds ALiBi with baddbmm in the (B*H, S, S) layout, then the padding mask after the view to
  (B, H, S, S): one site, the two biases summed into its additive mask, the scale from baddbmm's alpha.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from attncc.frontends.torch_import import import_torch  # noqa: E402
from attncc.ir import run_graph  # noqa: E402

E, H = 32, 4
HEAD = E // H


def _eager(model, inputs):
    with torch.no_grad():
        return model(*inputs).numpy()


class OPTAttention(torch.nn.Module):
    def __init__(self, scale_key=False):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = (torch.nn.Linear(E, E) for _ in range(3))
        self.scaling, self.scale_key = HEAD ** -0.5, scale_key

    def _heads(self, t, b, s):
        return t.view(b, s, H, HEAD).transpose(1, 2)

    def forward(self, x):
        b, s, _ = x.shape
        q, k = self.q_proj(x), self.k_proj(x)
        if self.scale_key:
            k = k * self.scaling
        else:
            q = q * self.scaling
        q, k, v = self._heads(q, b, s), self._heads(k, b, s), self._heads(self.v_proj(x), b, s)
        w = torch.matmul(q, k.transpose(-1, -2))
        out = torch.matmul(w.softmax(-1), v)
        return out.transpose(1, 2).reshape(b, s, E)


@pytest.mark.parametrize("scale_key", [False, True], ids=["scaled-query", "scaled-key"])
def test_scale_applied_before_the_head_split_moves_into_the_spec(scale_key):
    torch.manual_seed(0)
    model, x = OPTAttention(scale_key).eval(), torch.randn(2, 5, E)
    g = import_torch(model, (x,))
    (att,) = g.attention_ops()
    assert att.spec.scale == pytest.approx(model.scaling, rel=1e-6)
    assert not [n for n in g.find("Binary") if n.op.fn == "mul"]  # the Mul on the projection is gone
    np.testing.assert_allclose(run_graph(g, [x.numpy()])[0], _eager(model, (x,)), rtol=1e-5, atol=1e-5)


class BloomStyleAttention(torch.nn.Module):
    """BLOOM's eager attention: fused qkv, alibi (B*H, 1, S) added by baddbmm, then the (B, 1, S, S) mask."""

    def __init__(self):
        super().__init__()
        self.query_key_value, self.dense = torch.nn.Linear(E, 3 * E), torch.nn.Linear(E, E)
        self.inv_norm_factor = 1.0 / math.sqrt(HEAD)

    def forward(self, x, alibi, mask):
        b, s, _ = x.shape
        fused = self.query_key_value(x).view(b, s, H, 3, HEAD)
        q, k, v = (fused[..., i, :].transpose(1, 2).reshape(b * H, s, HEAD) for i in range(3))
        scores = alibi.baddbmm(batch1=q, batch2=k.transpose(-1, -2), beta=1.0, alpha=self.inv_norm_factor)
        weights = scores.view(b, H, s, s) + mask
        probs = torch.softmax(weights, dim=-1, dtype=torch.float32)
        ctx = torch.bmm(probs.view(b * H, s, s), v)
        return self.dense(ctx.view(b, H, s, HEAD).permute(0, 2, 1, 3).reshape(b, s, E))


def _alibi_and_mask(b, s):
    slopes = 2.0 ** (-8.0 * torch.arange(1, H + 1) / H)
    keep = torch.ones(b, s)
    keep[-1, s - 2:] = 0  # right padding in the last row
    positions = ((keep.cumsum(-1) - 1) * keep)[:, None, :]
    alibi = (slopes[None, :, None] * positions).reshape(b * H, 1, s)
    causal = torch.triu(torch.ones(s, s, dtype=torch.bool), 1)
    masked = causal[None, None] | (keep[:, None, None, :] == 0)
    return alibi, torch.zeros(b, 1, s, s).masked_fill(masked, torch.finfo(torch.float32).min)


def test_bloom_style_baddbmm_alibi_is_lifted_with_the_mask_summed():
    torch.manual_seed(0)
    model = BloomStyleAttention().eval()
    inputs = (torch.randn(2, 6, E),) + _alibi_and_mask(2, 6)
    g = import_torch(model, inputs)
    (att,) = g.attention_ops()
    assert att.spec.scale == pytest.approx(1 / math.sqrt(HEAD), rel=1e-6)
    assert att.spec.mask.input == "additive" and (att.spec.num_heads, att.spec.num_kv_heads) == (H, H)
    assert not g.find("Softmax")
    np.testing.assert_allclose(run_graph(g, [t.numpy() for t in inputs])[0], _eager(model, inputs),
                               rtol=1e-5, atol=1e-5)


def test_transformers_bloom_eager_is_lifted():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.BloomConfig(vocab_size=64, hidden_size=E, n_layer=2, n_head=H)
    cfg._attn_implementation = "eager"
    bloom = transformers.BloomModel(cfg).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bloom = bloom

        def forward(self, ids, mask):
            return self.bloom(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state

    model = LastHidden().eval()
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[1, 5:] = 0
    g = import_torch(model, (ids, mask))
    assert len(g.attention_ops()) == 2 and not g.find("Softmax"), g.diagnostics
    for att in g.attention_ops():
        assert att.spec.scale == pytest.approx(1 / math.sqrt(HEAD), rel=1e-6)
    np.testing.assert_allclose(run_graph(g, [ids.numpy(), mask.numpy()])[0], _eager(model, (ids, mask)),
                               rtol=1e-4, atol=1e-5)
