"""A static KV cache written at a position index (HF StaticCache: index_copy_ at cache_position): imported
as IndexCopy, and written IN PLACE into the caller's cache tensors (only the new rows move)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import attncc


class StaticCacheAttention(torch.nn.Module):
    def forward(self, q, k, v, k_cache, v_cache, pos):
        k_cache.index_copy_(2, pos, k)
        v_cache.index_copy_(2, pos, v)
        keep = torch.arange(k_cache.shape[2])[None, :] <= pos[:, None]
        return F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=keep, enable_gqa=True)


class ReadsOldCache(torch.nn.Module):
    """Reads the cache before writing it: the write cannot be in place (the old value is still needed)."""

    def forward(self, k_cache, k, pos):
        before = k_cache.sum(2)
        k_cache.index_copy_(2, pos, k)
        return before + k_cache.sum(2)


def _step(gen, p):
    return (torch.randn(1, 4, 1, 16, generator=gen), torch.randn(1, 2, 1, 16, generator=gen),
            torch.randn(1, 2, 1, 16, generator=gen), torch.tensor([p]))


def test_decode_writes_the_callers_cache_in_place_and_matches_eager():
    m = StaticCacheAttention()
    gen = torch.Generator().manual_seed(0)
    q, k, v, pos = _step(gen, 0)
    cm = attncc.compile(m, (q, k, v, torch.zeros(1, 2, 32, 16), torch.zeros(1, 2, 32, 16), pos), strict=True)
    assert [n.op.op_name for n in cm.graph.nodes].count("IndexCopy") == 2
    kc, vc = torch.zeros(1, 2, 32, 16), torch.zeros(1, 2, 32, 16)
    rk, rv = kc.clone(), vc.clone()
    ptr = kc.data_ptr()
    for p in range(8):
        q, k, v, pos = _step(gen, p)
        got = cm(q, k, v, kc, vc, pos)
        want = m(q, k, v, rk, rv, pos)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(kc, rk, rtol=0, atol=0)   # the caller's tensor was updated, as torch does
        torch.testing.assert_close(vc, rv, rtol=0, atol=0)
    assert kc.data_ptr() == ptr
    steps = next(iter(cm.executable.artifacts["program"].runners.values())).plan.steps
    writes = [s for s in steps if s["op"].startswith("IndexCopy")]
    assert [s["op"] for s in writes] == ["IndexCopy", "IndexCopy"]   # the new rows only: no whole-cache copy
    assert "IndexCopy" in cm.report.to_text()


def test_numpy_cache_is_updated_too():
    m = StaticCacheAttention()
    gen = torch.Generator().manual_seed(1)
    q, k, v, pos = _step(gen, 3)
    kc, vc = np.zeros((1, 2, 32, 16), np.float32), np.zeros((1, 2, 32, 16), np.float32)
    cm = attncc.compile(m, (q, k, v, torch.from_numpy(kc.copy()), torch.from_numpy(vc.copy()), pos))
    got = cm(q.numpy(), k.numpy(), v.numpy(), kc, vc, pos.numpy())
    rk, rv = torch.zeros(1, 2, 32, 16), torch.zeros(1, 2, 32, 16)
    want = m(q, k, v, rk, rv, pos)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(kc, rk.numpy())


def test_a_cache_read_before_the_write_is_copied_not_overwritten():
    m = ReadsOldCache()
    kc = torch.randn(1, 2, 8, 4)
    k, pos = torch.randn(1, 2, 1, 4), torch.tensor([2])
    cm = attncc.compile(m, (kc.clone(), k, pos))
    mine, ref = kc.clone(), kc.clone()
    torch.testing.assert_close(cm(mine, k, pos), m(ref, k, pos), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mine, ref, rtol=0, atol=0)
