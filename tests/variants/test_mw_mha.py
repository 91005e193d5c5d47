"""MW-MHA (multi-window MHA, `head_blocks`) against the authors' WindowedMultiHeadAttention
(SarthakYadav/mwmae-jax-official, src/modules/layers.py; fixtures recorded with jax/flax outside attncc at the
commit named in each fixture): per-head non-overlapping blocks, 0 = global head, per-head relative position bias.
Identity: all heads global == torch SDPA. Pinned: the sliding band (LocalGlobalAttention) is not MW-MHA."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc.cost_models import attention_cost
from attncc.cost_models.attention_cost import apply_feature_rules, plain_work
from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import HeadBlocks
from attncc.nn import LocalGlobalAttention, MultiWindowAttention

from .harness import check_variant, rand
from .reference_fixtures import load

FIXTURES = ["w2-4-0-8_T16", "w4_qkvbias_T12", "decoder_w2-5-10-25-50-125-0-0_T250", "shift_w2-4-0-8_T16",
            "shift_w5-3-0_T15"]


def _module(name: str):
    a, meta = load(f"mwmae_{name}")
    assert meta["source"] == "github.com/SarthakYadav/mwmae-jax-official" and len(meta["commit"]) == 40
    kw = meta["kwargs"]
    ws = kw["window_sizes"]
    sizes = tuple(ws) if isinstance(ws, list) else (ws,) * kw["num_heads"]
    m = MultiWindowAttention(kw["dim"], kw["num_heads"], sizes, qkv_bias=kw["qkv_bias"],
                             shift_windows=meta["shift_windows"]).load_mwmae(a).eval()
    return m, a


@pytest.mark.parametrize("cpu", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["reference", "cpu"])
@pytest.mark.parametrize("name", FIXTURES)
def test_mw_mha_matches_the_authors_code(name, cpu):
    m, a = _module(name)
    x = torch.from_numpy(a["x"])
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), a["out"], rtol=1e-4, atol=1e-5, err_msg="module vs the authors' MW-MHA")
    check_variant(m, (x,), {"score_mods": m.spec.score_mods}, seed_outputs=a["out"], cpu=cpu)
    assert m.spec.score_mods[0].shift == name.startswith("shift")


def test_sliding_band_is_not_the_authors_mw_mha():
    """Pins the doc table: LocalGlobalAttention's |i-j| <= w band without bias differs from the authors' blocks."""
    m, a = _module("w2-4-0-8_T16")
    band = LocalGlobalAttention(32, 4, windows=(2, 4, None, 8)).eval()
    band.load_state_dict({k: v for k, v in m.state_dict().items() if k != "rel_pos_bias"})
    with torch.no_grad():
        out = band(torch.from_numpy(a["x"])).numpy()
    assert np.linalg.norm(out - a["out"]) / np.linalg.norm(a["out"]) > 0.05


def test_all_heads_global_is_torch_mha():
    m = MultiWindowAttention(32, 4, (0, 0, 0, 0)).eval()
    x = rand(2, 6, 32)
    with torch.no_grad():
        q, k, v = (p(x).reshape(2, 6, 4, 8).transpose(1, 2) for p in (m.q_proj, m.k_proj, m.v_proj))
        want = m.o_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 6, 32))
        torch.testing.assert_close(m(x), want, rtol=1e-5, atol=1e-6)


def test_lengths_not_a_multiple_of_a_block_are_rejected():
    m = MultiWindowAttention(16, 2, (4, 0))
    with pytest.raises(Exception, match="multiple of block size 4"):
        import attncc
        attncc.import_model(m, (rand(1, 6, 16),))


def test_cost_rule_counts_block_pairs_and_the_bias_mask():
    sizes, n = (2, 5, 10, 25, 50, 125, 0, 0), 250
    spec = AttentionSpec(8, 8, 48, score_mods=(HeadBlocks(sizes),))
    work = apply_feature_rules(plain_work(spec, 1, n, n, "float32"), spec)
    assert work.pairs_per_head == pytest.approx(sum(n * (b or n) for b in sizes) / 8)   # b keys per query, n global
    assert work.extra_bytes == 2 * 8 * n * n * 4                                        # (H, S, S) fp32 bias, w + r
    causal = AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True), score_mods=(HeadBlocks((4, 0), rel_bias=False),))
    cw = apply_feature_rules(plain_work(causal, 1, 8, 8, "float32"), causal)
    assert cw.pairs_per_head == (2 * (4 * 5 // 2) + 8 * 9 // 2) / 2 and cw.extra_bytes == 0
    # shift: every row of the wrapped block sees only its own segment (b - b//2 or b//2 keys), checked by count
    for mask in (MaskSpec(), MaskSpec(causal=True)):
        sh = AttentionSpec(3, 3, 8, mask=mask, score_mods=(HeadBlocks((5, 3, 0), rel_bias=False, shift=True),))
        keep, _ = sh.score_mods[0].layout(15)
        if mask.causal:
            keep = keep & np.tril(np.ones((15, 15), bool))
        got = apply_feature_rules(plain_work(sh, 1, 15, 15, "float32"), sh).pairs_per_head
        assert got == keep.sum() / 3
    plain = attention_cost(AttentionSpec(8, 8, 48), 1, n, n, "float32", None, "host-cpu")
    blocked = attention_cost(spec, 1, n, n, "float32", None, "host-cpu")
    assert blocked.flops < plain.flops
