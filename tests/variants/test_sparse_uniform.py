"""Sparsifiner top-k, block-sparse connectivity, and uniform-attention context broadcasting."""
import pytest
import torch

from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import BlockSparse, MultiWindow, TopkSparse, Uniform
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import BlockSparseAttention, ContextBroadcastAttention, SparsifinerAttention, attention

from .harness import check_variant, rand

SHAPES = [(2, 7), (3, 12)]


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_sparsifiner_topk(batch, seq):
    torch.manual_seed(0)
    check_variant(SparsifinerAttention(32, 4, top_k=3), (rand(batch, seq, 32),), {"score_mods": (TopkSparse(3),)})


def test_topk_keeps_exactly_k_keys():
    q, k = rand(1, 1, 6, 8), rand(1, 1, 6, 8, seed=1)
    v = torch.eye(6)[None, None].expand(1, 1, 6, 6)                  # output row = attention weights
    conn = rand(1, 1, 6, 6, seed=2)
    p = attention(AttentionSpec(1, 1, 8, v_head_dim=6, score_mods=(TopkSparse(2),)), query=q, key=k, value=v,
                  connectivity=conn)
    assert ((p > 0).sum(-1) == 2).all()
    assert torch.equal(p > 0, conn >= conn.topk(2, -1).values[..., 1:])


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_block_sparse(batch, seq):
    torch.manual_seed(1)
    nb = -(-seq // 4)
    mask = torch.rand(batch, 4, nb, nb, generator=torch.Generator().manual_seed(seq)) > 0.4
    mask |= torch.eye(nb, dtype=torch.bool)                          # every query block sees its own block
    check_variant(BlockSparseAttention(32, 4, block_size=4, causal=True), (rand(batch, seq, 32), mask),
                  {"score_mods": (BlockSparse(4),), "mask.causal": True})


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_context_broadcast(batch, seq):
    torch.manual_seed(2)
    check_variant(ContextBroadcastAttention(32, 4, weight=0.5, causal=True), (rand(batch, seq, 32),),
                  {"score_mods": (Uniform(0.5),)})


def test_uniform_weight_one_is_mean_of_visible_values():
    q, k, v = rand(2, 2, 5, 8), rand(2, 2, 5, 8, seed=1), rand(2, 2, 5, 8, seed=2)
    out = attention(AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True), score_mods=(Uniform(1.0),)), query=q, key=k, value=v)
    torch.testing.assert_close(out, v.cumsum(2) / torch.arange(1, 6)[:, None])


def test_score_mods_compose():
    q, k, v = rand(2, 2, 9, 8), rand(2, 2, 9, 8, seed=1), rand(2, 2, 9, 8, seed=2)
    conn = rand(2, 2, 9, 9, seed=3)
    spec = AttentionSpec(2, 2, 8, score_mods=(MultiWindow((2, None)), TopkSparse(4)))
    import numpy as np
    from attncc.ir.interpreter import attention_reference
    ref = attention_reference(spec, {"query": q.numpy(), "key": k.numpy(), "value": v.numpy(), "connectivity": conn.numpy()})[0]
    out = attention(spec, query=q, key=k, value=v, connectivity=conn)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-4, atol=1e-5)


def test_sparse_configuration_errors():
    with pytest.raises(SpecError, match="top_k"):
        TopkSparse(0)
    with pytest.raises(SpecError, match="weight"):
        Uniform(1.5)
    with pytest.raises(SpecError, match="block_size"):
        BlockSparse(0)
