"""torch creation without values (empty / empty_like / new_empty / new_full / new_zeros / new_ones / full),
writes into slices (copy, slice_scatter, select_scatter), constant_pad_nd, topk and gather — the aten ops
DeepSeek-V3's MLA key, Swin's window padding and MoE routers export to — match eager torch, on the
reference interpreter and compiled for cpu."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

try:
    from .torch_helpers import assert_matches_eager, eager_outputs, import_torch
except ImportError:  # tests/frontends is not a package
    from torch_helpers import assert_matches_eager, eager_outputs, import_torch


class MLAKey(torch.nn.Module):
    """DeepSeek-V3 style: the key is allocated empty, then filled with the no-rope part and the shared rope part."""

    def forward(self, q, k_nope, k_pe, v):
        b, h, s, d = k_nope.shape
        k = k_nope.new_empty(b, h, s, d + k_pe.shape[-1])
        k[..., :d] = k_nope
        k[..., d:] = k_pe  # (b, 1, s, r) broadcast over the heads
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class Creation(torch.nn.Module):
    def forward(self, x):
        a = x.new_empty(x.shape).fill_(1.5)
        b = x.new_full((x.shape[0], 3), 2.0) + torch.full((x.shape[0], 3), 7.0)
        c = x.new_zeros(x.shape) + x.new_ones(x.shape) + torch.empty_like(x).fill_(3.0)
        return x * a + c, b


class Scatter(torch.nn.Module):
    def forward(self, x, y, z):
        x = x.clone()
        x[:, ::2] = y  # strided slice_scatter
        x[:, 1] = z  # select_scatter
        x[:, -2:] = 0.5
        return x


class WindowPad(torch.nn.Module):
    """Swin's padding of (B, H, W, C) feature maps up to a multiple of the window size (plus one crop)."""

    def forward(self, x):
        padded = F.pad(x, (0, 0, 0, 3, 1, 2), value=-1.0)
        return padded, F.pad(x, (0, 0, -1, 2))


class Router(torch.nn.Module):
    """A top-2 MoE router: softmax gates, top-k experts, their logits gathered back."""

    def __init__(self):
        super().__init__()
        self.gate = torch.nn.Linear(16, 8, bias=False)

    def forward(self, x):
        logits = self.gate(x)
        weights, experts = torch.topk(logits.softmax(-1), 2, dim=-1)
        chosen = torch.gather(logits, -1, experts)
        smallest, _ = torch.topk(logits, 3, dim=-1, largest=False)
        return weights / weights.sum(-1, keepdim=True), experts, chosen, smallest


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


CASES = {
    "mla-key": (MLAKey, lambda: (_rand(2, 4, 6, 12), _rand(2, 4, 6, 8, seed=1), _rand(2, 1, 6, 4, seed=2),
                                 _rand(2, 4, 6, 8, seed=3))),
    "creation": (Creation, lambda: (_rand(3, 5),)),
    "scatter": (Scatter, lambda: (_rand(2, 7, 3), _rand(2, 4, 3, seed=1), _rand(2, 3, seed=2))),
    "window-pad": (WindowPad, lambda: (_rand(2, 5, 6, 4),)),
    "router": (Router, lambda: (_rand(2, 5, 16),)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_eager_on_the_reference_interpreter(case):
    cls, make = CASES[case]
    torch.manual_seed(0)
    model, inputs = cls().eval(), make()
    graph = import_torch(model, inputs)
    assert_matches_eager(graph, model, inputs)
    if case == "mla-key":
        (att,) = graph.attention_ops()
        assert att.spec.head_dim == 12 and att.spec.mask.causal


def test_router_with_symbolic_tokens():
    torch.manual_seed(0)
    model = Router().eval()
    graph = import_torch(model, (_rand(2, 5, 16),), dynamic_shapes=({0: torch.export.Dim("batch"),
                                                                     1: torch.export.Dim("seq", max=64)},))
    assert graph.inputs[0].shape[:2] == ("batch", "seq")
    assert_matches_eager(graph, model, (_rand(3, 9, 16, seed=4),))


def test_topk_and_pad_errors_name_the_limit():
    class Big(torch.nn.Module):
        def forward(self, x):
            return torch.topk(x, 65).values

    with pytest.raises(Exception, match="k=65"):
        import_torch(Big(), (_rand(2, 100),))


@pytest.mark.slow   # default-suite budget: the import tests above check these ops against eager by default
def test_compiles_for_cpu_and_matches_eager(tmp_path, monkeypatch):
    """One model with every converter above, so one cpu build covers them."""
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))

    class All(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mla, self.router, self.pad, self.scatter = MLAKey(), Router(), WindowPad(), Scatter()

        def forward(self, q, k_nope, k_pe, v, tokens, fmap):
            w, e, c, s = self.router(tokens)
            p, crop = self.pad(fmap)
            x = self.scatter(p[:, :7, :, 0], p[:, 0:7:2, :, 1], p[:, 1, :, 2])
            return self.mla(q, k_nope, k_pe, v), w, e, c, s, crop, x

    torch.manual_seed(0)
    model = All().eval()
    inputs = CASES["mla-key"][1]() + (_rand(2, 5, 16, seed=5), _rand(2, 5, 6, 4, seed=6))
    compiled = attncc.compile(model, inputs, target="cpu")
    got = compiled(*inputs)
    want = eager_outputs(model, inputs)
    for g, w in zip(got, want):
        g = g.numpy() if hasattr(g, "numpy") else np.asarray(g)
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
