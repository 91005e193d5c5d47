"""Efficient Conformer grouped / strided attention and low-rank global-context attention."""
import pytest
import torch

from attncc.ir.errors import IRError
from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import GlobalQuery, Grouped, Strided
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import GroupedAttention, LowRankGlobalAttention, MultiHeadAttention, StridedAttention, attention

from .harness import check_variant, rand


@pytest.mark.parametrize("batch,seq,g", [(2, 6, 3), (3, 12, 4)])
def test_grouped(batch, seq, g):
    torch.manual_seed(0)
    _, spec = check_variant(GroupedAttention(32, 4, group_size=g), (rand(batch, seq, 32),), {"kv_source": Grouped(g)})
    assert spec.scale == pytest.approx(1 / (g * 8) ** 0.5)


def test_grouped_size_one_is_mha():
    torch.manual_seed(1)
    m = GroupedAttention(32, 4, group_size=1).eval()
    q, k, v = rand(2, 4, 7, 8), rand(2, 4, 7, 8, seed=1), rand(2, 4, 7, 8, seed=2)
    out = attention(m.spec, query=q, key=k, value=v)
    ref = attention(AttentionSpec(4, 4, 8), query=q, key=k, value=v)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("batch,seq,stride", [(2, 7, 2), (3, 12, 5)])
def test_strided_downsamples(batch, seq, stride):
    torch.manual_seed(2)
    m = StridedAttention(32, 4, stride=stride)
    graph, _ = check_variant(m, (rand(batch, seq, 32),), {"kv_source": Strided(stride)})
    assert graph.outputs[0].shape[1] == -(-seq // stride)


@pytest.mark.parametrize("batch,seq,nq", [(2, 7, 1), (3, 12, 3)])
def test_low_rank_global_context(batch, seq, nq):
    torch.manual_seed(3)
    m = LowRankGlobalAttention(32, 4, head_dim=12, rank=5, num_queries=nq)   # head size 12 != 32 / 4
    graph, spec = check_variant(m, (rand(batch, seq, 32),), {"kv_source": GlobalQuery(nq, 5), "head_dim": 12})
    assert graph.outputs[0].shape == (batch, nq, 32)
    assert spec.variant == "lowrank"


def test_conformer_configuration_errors():
    m = GroupedAttention(32, 4, group_size=3)
    with pytest.raises(ValueError, match="not divisible by group_size 3"):
        m(rand(2, 7, 32))
    import attncc
    g_spec = AttentionSpec(4, 4, 8, kv_source=Grouped(3))

    class Raw(torch.nn.Module):
        def forward(self, q, k, v):
            return attention(g_spec, query=q, key=k, value=v)

    with pytest.raises(Exception, match="not divisible by group_size 3"):
        attncc.import_model(Raw(), (rand(1, 4, 7, 8), rand(1, 4, 7, 8), rand(1, 4, 7, 8)))
    with pytest.raises(SpecError, match="stride must be a positive int"):
        Strided(0)
    with pytest.raises(SpecError, match="group_size"):
        Grouped(-1)
    with pytest.raises(SpecError, match="mask must be empty"):
        from attncc.ir.ops import MaskSpec
        AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True), kv_source=GlobalQuery(1))
