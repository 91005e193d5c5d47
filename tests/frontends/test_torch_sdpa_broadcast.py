"""scaled_dot_product_attention without enable_gqa broadcasts (batch, heads) like torch's matmuls: one
key/value head is multi-query attention (num_kv_heads=1), a one-head query takes the key's heads."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

try:
    from .torch_helpers import assert_matches_eager, eager_outputs, import_torch
except ImportError:  # tests/frontends is not a package
    from torch_helpers import assert_matches_eager, eager_outputs, import_torch


class SDPA(torch.nn.Module):
    def __init__(self, causal=False):
        super().__init__()
        self.causal = causal

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


def _qkv(qs, ks, vs):
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(*s, generator=g) for s in (qs, ks, vs))


@pytest.mark.parametrize("qs,ks,vs,heads,kv_heads", [
    ((2, 4, 6, 8), (2, 1, 6, 8), (2, 1, 6, 8), 4, 1),  # MQA
    ((2, 1, 6, 8), (2, 4, 6, 8), (2, 4, 6, 8), 4, 4),  # one query head against every key head
    ((2, 4, 6, 8), (2, 1, 6, 8), (2, 4, 6, 8), 4, 4),  # only the key broadcasts
    ((2, 4, 6, 8), (1, 1, 6, 8), (1, 1, 6, 8), 4, 1),  # key/value shared by the batch too
], ids=["mqa", "query-broadcast", "key-only", "batch-and-heads"])
def test_broadcast_heads_match_eager(qs, ks, vs, heads, kv_heads):
    model, inputs = SDPA(causal=True).eval(), _qkv(qs, ks, vs)
    graph = import_torch(model, inputs)
    (att,) = graph.attention_ops()
    assert (att.spec.num_heads, att.spec.num_kv_heads) == (heads, kv_heads)
    assert_matches_eager(graph, model, inputs)


def test_mqa_compiles_for_cpu_and_matches_eager(tmp_path, monkeypatch):
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    model, inputs = SDPA(causal=True).eval(), _qkv((2, 4, 6, 8), (2, 1, 6, 8), (2, 1, 6, 8))
    compiled = attncc.compile(model, inputs, target="cpu")
    assert compiled.graph.attention_ops()[0].spec.num_kv_heads == 1
    got = compiled(*inputs)
    np.testing.assert_allclose(got.numpy() if hasattr(got, "numpy") else got, eager_outputs(model, inputs)[0],
                               rtol=1e-4, atol=1e-5)
