"""Efficient Conformer grouped / strided attention and low-rank global-context attention."""
import pytest
import torch

from attncc.ir.errors import IRError
from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import GlobalQuery, Grouped, Strided
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import GroupedAttention, LowRankGlobalAttention, MultiHeadAttention, StridedAttention, attention

from .harness import check_variant, rand


@pytest.mark.parametrize("batch,seq,g", [(2, 7, 3), (3, 12, 4)])
def test_grouped(batch, seq, g):
    torch.manual_seed(0)
    _, spec = check_variant(GroupedAttention(32, 4, group_size=g), (rand(batch, seq, 32),), {"kv_source": Grouped(g)})
    assert spec.scale == pytest.approx(1 / (g * 8) ** 0.5)


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
    with pytest.raises(SpecError, match="num_kv_heads .2. must equal num_heads .4."):
        AttentionSpec(4, 2, 8, kv_source=Grouped(3))
    with pytest.raises(SpecError, match="stride must be a positive int"):
        Strided(0)
    with pytest.raises(SpecError, match="group_size"):
        Grouped(-1)
    with pytest.raises(SpecError, match="mask must be empty"):
        from attncc.ir.ops import MaskSpec
        AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True), kv_source=GlobalQuery(1))
