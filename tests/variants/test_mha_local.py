"""MHA/GQA/MQA, cross-attention, sliding window, local+global heads (LS / multi-window), HaloNet blocks."""
import pytest
import torch
import torch.nn.functional as F

from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import BlockedLocal, MultiWindow
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import CrossAttention, HaloAttention, LocalGlobalAttention, MultiHeadAttention, SlidingWindowAttention

from .harness import check_variant, rand

SHAPES = [(2, 7), (3, 12)]


@pytest.mark.parametrize("kv_heads,label", [(4, "mha"), (2, "gqa"), (1, "mqa")])
@pytest.mark.parametrize("batch,seq", SHAPES)
def test_head_ratio_variants(batch, seq, kv_heads, label):
    torch.manual_seed(0)
    m = MultiHeadAttention(32, 4, num_kv_heads=kv_heads, causal=True)
    _, spec = check_variant(m, (rand(batch, seq, 32),), {"num_kv_heads": kv_heads, "mask.causal": True})
    assert spec.variant == label


def test_custom_op_equals_torch_sdpa():
    q, k, v = rand(2, 4, 7, 8), rand(2, 2, 7, 8, seed=1), rand(2, 2, 7, 8, seed=2)
    from attncc.ir.ops import MaskSpec
    from attncc.nn import attention
    out = attention(AttentionSpec(4, 2, 8, mask=MaskSpec(causal=True)), query=q, key=k, value=v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))


@pytest.mark.parametrize("batch,seq,mem", [(2, 7, 5), (3, 12, 9)])
def test_cross_attention(batch, seq, mem):
    torch.manual_seed(1)
    m = CrossAttention(32, 4, kv_dim=24)
    graph, spec = check_variant(m, (rand(batch, seq, 32), rand(batch, mem, 24, seed=1)), {"mask.causal": False})
    att = graph.attention_ops()[0]
    assert att.inputs[0].shape[2] == seq and att.inputs[1].shape[2] == mem   # Sq != Skv


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_sliding_window(batch, seq):
    torch.manual_seed(2)
    check_variant(SlidingWindowAttention(32, 4, window=3), (rand(batch, seq, 32),),
                  {"mask.window_left": 3, "mask.causal": True})


@pytest.mark.parametrize("windows,causal", [((2, None, 4, None), True), ((1, 3, 5, None), False)])
@pytest.mark.parametrize("batch,seq", SHAPES)
def test_local_global_heads(batch, seq, windows, causal):
    torch.manual_seed(3)
    m = LocalGlobalAttention(32, 4, windows, causal=causal)
    check_variant(m, (rand(batch, seq, 32),), {"score_mods": (MultiWindow(windows),), "mask.causal": causal})


def test_all_global_windows_equal_plain_attention():
    torch.manual_seed(4)
    m = LocalGlobalAttention(32, 4, (None,) * 4, causal=True).eval()
    ref = MultiHeadAttention(32, 4, causal=True).eval()
    ref.load_state_dict(m.state_dict())
    x = rand(2, 7, 32)
    torch.testing.assert_close(m(x), ref(x))


@pytest.mark.parametrize("batch,seq", SHAPES)
def test_halo_blocks(batch, seq):
    torch.manual_seed(5)
    check_variant(HaloAttention(32, 4, block_size=4, halo=1), (rand(batch, seq, 32),),
                  {"score_mods": (BlockedLocal(4, 1),)})


def test_local_configuration_errors():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        MultiHeadAttention(32, 4, num_kv_heads=3)
    with pytest.raises(SpecError, match="num_heads .4. must be divisible by num_kv_heads .3."):
        AttentionSpec(4, 3, 8)
    with pytest.raises(ValueError, match="window must be None or >= 0"):
        SlidingWindowAttention(32, 4, window=-1)
    with pytest.raises(SpecError, match="windows entries"):
        MultiWindow((2, -1))
    with pytest.raises(SpecError, match="3 windows given for 4 heads"):
        AttentionSpec(4, 4, 8, score_mods=(MultiWindow((1, 2, 3)),))
    with pytest.raises(SpecError, match="halo"):
        BlockedLocal(4, -2)
