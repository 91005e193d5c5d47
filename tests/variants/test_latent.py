"""MLA (naive == absorbed, cache = latent + rope per token, decode == prefill) and MTLA (stride-aware mask)."""
import numpy as np
import pytest
import torch

from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import MLA, MTLA
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import MultiHeadLatentAttention, TemporalLatentAttention

from .harness import check_variant, rand
from .reference_fixtures import load

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
    """Token-by-token decoding with a cache of ceil(t/stride) entries (merged latent, the chunk's latest k_pe), as the
    authors' incremental path keeps it: the behaviour MTLA's stride-aware mask and per-token k_pe must match."""
    s, L, n = m.spec.kv_source.stride, m.latent_dim, m.nope_dim
    S = x.shape[1]
    q = m.q_proj(x).reshape(*x.shape[:2], m.num_heads, -1).transpose(1, 2)
    q = torch.cat([q[..., :n], m._rope(q[..., n:], S)], -1)
    kv = m.kv_down(x)
    c = m.kv_norm(kv[..., :L])
    pe = m._rope(kv[..., L:], S)
    w = m.merge_weights(c)
    outs, cc, cp = [], [], []
    for t in range(S):
        if t % s == 0:
            cc.append(w[:, t, None] * c[:, t]), cp.append(pe[:, t])
        else:
            cc[-1], cp[-1] = cc[-1] + w[:, t, None] * c[:, t], pe[:, t]
        C, P = torch.stack(cc, 1), torch.stack(cp, 1)                  # (B, entries, L), (B, entries, r)
        K = torch.cat([torch.einsum("btl,lhn->bhtn", C, m.w_uk), P[:, None].expand(-1, m.num_heads, -1, -1)], -1)
        V = torch.einsum("btl,lhv->bhtv", C, m.w_uv)
        p = torch.softmax(m.spec.scale * (q[:, :, t:t + 1] @ K.transpose(-1, -2)), -1)
        outs.append(p @ V)
        assert K.shape[2] == -(-(t + 1) // s)            # cache holds ceil((t+1)/stride) merged entries
    o = torch.cat(outs, 2).transpose(1, 2).reshape(*x.shape[:2], -1)
    return m.o_proj(o)


@pytest.mark.parametrize("batch,seq,stride", [pytest.param(2, 7, 2, marks=pytest.mark.slow), (3, 12, 3)])   # budget
def test_mtla_agrees_and_matches_incremental_decoding(batch, seq, stride):
    torch.manual_seed(3)
    m = TemporalLatentAttention(24, 3, latent_dim=12, nope_dim=6, rope_dim=4, v_head_dim=5, stride=stride).eval()
    x = rand(batch, seq, 24)
    check_variant(m, (x,), {"kv_source.kind": "mtla", "kv_source.stride": stride, "kv_source.rope_dim": 4,
                            "mask.causal": True})
    with torch.no_grad():
        torch.testing.assert_close(m(x), _mtla_decode(m, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cpu", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["reference", "cpu"])
@pytest.mark.parametrize("name", ["q_proj_s2_T7", "q_lora_s3_T8"])
def test_mtla_matches_the_authors_package(name, cpu):
    """Fixtures recorded from the authors' mtla package (PyPI mtla 0.3.2, MultiheadTemporalLatentAttention; wheel
    sha256 in the fixture's meta): latent LayerNorm, decoupled per-token k_pe, hyper-network merge weights."""
    a, meta = load(f"mtla_{name}")
    kw = meta["kwargs"]
    m = TemporalLatentAttention(kw["embed_dim"], kw["num_heads"], kw["kv_lora_rank"], kw["qk_nope_head_dim"],
                                kw["qk_rope_head_dim"], kw["v_head_dim"], kw["down_rate"],
                                q_lora_rank=kw["q_lora_rank"] or None).load_mtla(a).eval()
    x = torch.from_numpy(a["x"])
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), a["out"], rtol=1e-4, atol=1e-5, err_msg="module vs the authors' mtla")
    check_variant(m, (x,), {"kv_source": MTLA(kw["down_rate"], kw["qk_rope_head_dim"])}, seed_outputs=a["out"], cpu=cpu)


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
