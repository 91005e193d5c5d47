"""MLA (naive == absorbed, cache = latent + rope per token, decode == prefill) and MTLA (stride-aware mask)."""
import numpy as np
import pytest
import torch

from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import MLA, MTLA
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import MultiHeadLatentAttention, TemporalLatentAttention

from .harness import check_variant, rand

SHAPES = [(2, 7), (3, 12)]


@pytest.mark.parametrize("absorbed", [False, True])
@pytest.mark.parametrize("batch,seq", SHAPES)
def test_mla_module_interpreter_compiled_agree(batch, seq, absorbed):
    torch.manual_seed(0)
    m = MultiHeadLatentAttention(32, 4, latent_dim=16, nope_dim=8, rope_dim=4, v_head_dim=6, absorbed=absorbed)
    check_variant(m, (rand(batch, seq, 32),), {"kv_source.kind": "mla", "kv_source.absorbed": absorbed,
                                               "kv_source.latent_dim": 16, "kv_source.rope_dim": 4,
                                               "num_kv_heads": 1, "head_dim": 12, "v_head_dim": 6})


def test_mla_absorbed_equals_naive_and_cache_is_latent_plus_rope():
    torch.manual_seed(1)
    m = MultiHeadLatentAttention(48, 6, latent_dim=20, nope_dim=8, rope_dim=6, v_head_dim=8).eval()
    x = rand(2, 9, 48)
    naive = m(x)
    m.set_absorbed(True)
    absorbed = m(x)
    torch.testing.assert_close(absorbed, naive, rtol=1e-4, atol=1e-5)
    assert m.kv_cache_per_token == 26 == m.spec.kv_source.kv_cache_per_token
    # DeepSeek-V3 dims: 512 + 64 = 576 values = 1152 bytes per token per layer in bf16
    assert MLA(512, 64).kv_cache_per_token * 2 == 1152


def test_mla_decode_with_cache_equals_prefill():
    torch.manual_seed(2)
    m = MultiHeadLatentAttention(32, 4, latent_dim=12, nope_dim=8, rope_dim=4, v_head_dim=8, absorbed=True).eval()
    x = rand(2, 7, 32)
    full = m(x)
    _, cache = m(x[:, :5], cache=x.new_zeros(2, 0, 16))
    assert cache.shape == (2, 5, 16)                      # (batch, tokens, latent + rope)
    step, cache = m(x[:, 5:6], cache=cache)
    torch.testing.assert_close(step, full[:, 5:6], rtol=1e-4, atol=1e-5)


def _mtla_decode(m, x):
    """Token-by-token decoding with a merged cache of ceil(t/stride) entries: the behaviour MTLA's mask must match."""
    s = m.spec.kv_source.stride
    H = m.num_heads
    c = m.kv_down(x)
    q = m.q_proj(x).reshape(*x.shape[:2], H, -1).transpose(1, 2)
    k = m.k_up(c).reshape(*x.shape[:2], H, -1).transpose(1, 2)
    v = m.v_up(c).reshape(*x.shape[:2], H, -1).transpose(1, 2)
    w = torch.sigmoid(m.merge(x)).squeeze(-1)
    outs, ck, cv = [], [], []
    for t in range(x.shape[1]):
        wk, wv = w[:, None, t, None] * k[:, :, t], w[:, None, t, None] * v[:, :, t]
        if t % s == 0:
            ck.append(wk), cv.append(wv)
        else:
            ck[-1], cv[-1] = ck[-1] + wk, cv[-1] + wv
        K, V = torch.stack(ck, 2), torch.stack(cv, 2)
        p = torch.softmax(m.spec.scale * (q[:, :, t:t + 1] @ K.transpose(-1, -2)), -1)
        outs.append(p @ V)
        assert K.shape[2] == -(-(t + 1) // s)            # cache holds ceil((t+1)/stride) merged entries
    o = torch.cat(outs, 2).transpose(1, 2).reshape(*x.shape[:2], -1)
    return m.o_proj(o)


@pytest.mark.parametrize("batch,seq,stride", [(2, 7, 2), (3, 12, 3)])
def test_mtla_agrees_and_matches_incremental_decoding(batch, seq, stride):
    torch.manual_seed(3)
    m = TemporalLatentAttention(24, 3, head_dim=8, latent_dim=10, stride=stride).eval()
    x = rand(batch, seq, 24)
    check_variant(m, (x,), {"kv_source.kind": "mtla", "kv_source.stride": stride, "mask.causal": True})
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mtla_decode(m, x), rtol=1e-4, atol=1e-5)


def test_latent_configuration_errors():
    with pytest.raises(SpecError, match="num_kv_heads must be 1"):
        AttentionSpec(4, 2, 12, kv_source=MLA(16, 4))
    with pytest.raises(SpecError, match="head_dim"):
        AttentionSpec(4, 1, 4, kv_source=MLA(16, 4))
    with pytest.raises(SpecError, match="stride"):
        MTLA(0)
    with pytest.raises(SpecError, match="causal"):
        AttentionSpec(4, 4, 8, kv_source=MTLA(2))
    with pytest.raises(ValueError, match="rope_dim must be even"):
        MultiHeadLatentAttention(32, 4, 16, 8, 3, 8)
    AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True), kv_source=MTLA(2))
