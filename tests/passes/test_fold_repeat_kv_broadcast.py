"""fold-repeat-kv on Falcon's K/V broadcast: the kv heads are sliced out of a fused qkv as a 5-D
(B, S, Hkv, 1, D) tensor, broadcast_to (B, S, Hkv, g, D) and flattened to (B, S, Hkv*g, D), optionally rotated
after the broadcast; the op gets num_kv_heads = Hkv and still matches eager torch."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontends"))
from torch_helpers import assert_matches_eager, import_torch  # noqa: E402

import attncc  # noqa: E402


def rotate(x, pos):
    """Rotate-half RoPE over the head dim at positions `pos` (applied to the already-broadcast heads)."""
    d = x.shape[-1]
    inv = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    ang = torch.cat([pos[:, None] * inv[None]] * 2, dim=-1)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * ang.cos() + torch.cat([-x2, x1], dim=-1) * ang.sin()


class FalconStyle(nn.Module):
    def __init__(self, dim=32, heads=4, kv_heads=2, rope=False):
        super().__init__()
        self.h, self.kv, self.d, self.rope = heads, kv_heads, dim // heads, rope
        self.qkv = nn.Linear(dim, (heads + 2 * kv_heads) * self.d)

    def forward(self, x):
        b, s, _ = x.shape
        qkv = self.qkv(x).view(b, s, self.kv, self.h // self.kv + 2, self.d)
        q, k, v = qkv[:, :, :, :-2], qkv[:, :, :, [-2]], qkv[:, :, :, [-1]]
        k, v = torch.broadcast_to(k, q.shape), torch.broadcast_to(v, q.shape)
        q, k, v = (t.flatten(2, 3).transpose(1, 2) for t in (q, k, v))
        if self.rope:
            pos = torch.arange(s, dtype=torch.float32)
            q, k = rotate(q, pos), rotate(k, pos)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return o.transpose(1, 2).reshape(b, s, -1)


@pytest.mark.parametrize("rope", [False, True])
def test_broadcast_kv_folds_into_kv_heads(rope):
    torch.manual_seed(0)
    m, x = FalconStyle(rope=rope).eval(), torch.randn(2, 6, 32)
    g = import_torch(m, (x,))
    opt = attncc.optimize(g, "cpu")
    (node,) = opt.attention_ops()
    assert node.spec.num_heads == 4 and node.spec.num_kv_heads == 2, node.spec.summary()
    assert not opt.find("Expand")   # no materialized kv copies left
    assert_matches_eager(opt, m, (x,))
