"""Mixture-of-heads routing, knocking-heads cross-head projections, CHAI clustered heads."""
import pytest
import torch

from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import CHAI, KnockingHeads, MoH
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import ClusteredHeadAttention, KnockingHeadsAttention, MixtureOfHeadsAttention, MultiHeadAttention, attention

from .harness import check_variant, rand

SHAPES = [(2, 7), (3, 12)]


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_mixture_of_heads(batch, seq):
    torch.manual_seed(0)
    m = MixtureOfHeadsAttention(48, 6, top_k=2, shared_heads=2, causal=True)
    check_variant(m, (rand(batch, seq, 48),), {"head_mixing": MoH(2, 2), "variant": "moh"})


def test_moh_zeroes_unselected_heads():
    torch.manual_seed(1)
    q, k, v = rand(2, 4, 5, 8), rand(2, 4, 5, 8, seed=1), rand(2, 4, 5, 8, seed=2)
    logits = rand(2, 5, 4, seed=3)
    out = attention(AttentionSpec(4, 4, 8, head_mixing=MoH(1, 1)), query=q, key=k, value=v, head_logits=logits)
    plain = attention(AttentionSpec(4, 4, 8), query=q, key=k, value=v)
    torch.testing.assert_close(out[:, 0], plain[:, 0])                       # shared head: weight 1
    chosen = logits[..., 1:].argmax(-1) + 1                                   # the single routed head per token
    for h in range(1, 4):
        sel = (chosen == h)[..., None]
        torch.testing.assert_close(out[:, h], torch.where(sel, plain[:, h], torch.zeros_like(plain[:, h])))


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_knocking_heads(batch, seq):
    torch.manual_seed(2)
    m = KnockingHeadsAttention(32, 4, num_kv_heads=2, targets=("q", "k", "v"), causal=True)
    with torch.no_grad():  # move off the identity init so the mixing matters
        for p in m.knock.values():
            p.add_(0.3 * torch.randn_like(p))
    check_variant(m, (rand(batch, seq, 32),), {"head_mixing": KnockingHeads(("q", "k", "v")), "num_kv_heads": 2})


def test_knocking_heads_identity_init_is_plain_attention():
    torch.manual_seed(3)
    m = KnockingHeadsAttention(32, 4, causal=True).eval()
    ref = MultiHeadAttention(32, 4, causal=True).eval()
    ref.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("knock")})
    x = rand(2, 7, 32)
    torch.testing.assert_close(m(x), ref(x))


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_chai_clusters(batch, seq):
    torch.manual_seed(4)
    m = ClusteredHeadAttention(32, 4, clusters=(0, 1, 0, 1))
    check_variant(m, (rand(batch, seq, 32),), {"head_mixing": CHAI((0, 1, 0, 1)), "mask.causal": True})


def test_chai_shares_representative_scores():
    q, k, v = rand(1, 3, 5, 8), rand(1, 3, 5, 8, seed=1), rand(1, 3, 5, 8, seed=2)
    out = attention(AttentionSpec(3, 3, 8, head_mixing=CHAI((0, 0, 1))), query=q, key=k, value=v)
    p0 = torch.softmax(q[:, 0] @ k[:, 0].transpose(-1, -2) / 8 ** 0.5, -1)
    torch.testing.assert_close(out[:, 1], p0 @ v[:, 1])                       # head 1 reuses head 0's scores
    assert CHAI((0, 0, 1)).representatives == (0, 0, 2)


def test_head_mixing_configuration_errors():
    with pytest.raises(SpecError, match="top_k 4 must be in"):
        AttentionSpec(4, 4, 8, head_mixing=MoH(4, 1))
    with pytest.raises(ValueError, match="top_k"):
        MixtureOfHeadsAttention(32, 4, top_k=0)
    with pytest.raises(SpecError, match="targets"):
        KnockingHeads(("x",))
    with pytest.raises(SpecError, match="3 cluster ids for 4 heads"):
        AttentionSpec(4, 4, 8, head_mixing=CHAI((0, 1, 2)))
    with pytest.raises(SpecError, match="cannot be combined"):
        AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True), head_mixing=CHAI((0, 1, 2, 3)), score_mods=())\
            .replace(head_mixing=MoH(1), kv_source=CHAI((0, 1, 2, 3)))
