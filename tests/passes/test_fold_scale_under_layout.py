"""canonicalize-attention folds a scalar on q applied before the head split (OPT and Whisper: `q_proj(x) *
scaling`, view/transpose, then SDPA with scale=1) into spec.scale, so the spec carries the real scale."""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from torch_helpers import assert_matches_eager, import_torch  # noqa: E402

import attncc  # noqa: E402


class ScaledQuerySdpa(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads, self.scaling = heads, (dim // heads) ** -0.5
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x):
        b, s, d = x.shape
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q = split(self.q(x) * self.scaling)
        o = F.scaled_dot_product_attention(q, split(self.k(x)), split(self.v(x)), is_causal=True, scale=1.0)
        return o.transpose(1, 2).reshape(b, s, d)


def test_scale_before_head_split_moves_into_spec():
    torch.manual_seed(0)
    m, x = ScaledQuerySdpa().eval(), torch.randn(2, 6, 32)
    g = import_torch(m, (x,))
    assert g.attention_ops()[0].spec.scale == 1.0  # as the model wrote it
    opt = attncc.optimize(g, "cpu")
    (node,) = opt.attention_ops()
    assert abs(node.spec.scale - 8 ** -0.5) < 1e-7, node.spec.summary()
    assert not [n for n in opt.nodes if n.op.op_name == "Binary" and n.op.fn == "mul"]  # the multiply is gone
    assert_matches_eager(opt, m, (x,))
