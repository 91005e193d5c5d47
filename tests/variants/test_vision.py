"""HiLo (windowed Hi-Fi heads + pooled Lo-Fi heads) and ConvShareViT (channel-shared valid convolutions)."""
import pytest
import torch

from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import ConvShare, HiLo
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import ConvShareAttention, HiLoAttention, MultiHeadAttention, attention

from .harness import check_variant, rand


@pytest.mark.parametrize("batch,image,window,local", [(2, (3, 4), (1, 2), 2), (3, (6, 6), (3, 2), 1)])
def test_hilo(batch, image, window, local):
    torch.manual_seed(0)
    m = HiLoAttention(32, 4, image, window, local_heads=local)
    check_variant(m, (rand(batch, image[0] * image[1], 32),), {"kv_source": HiLo(image, window, local)})


def test_hilo_one_pixel_windows_are_plain_attention():
    # 1x1 windows: Lo-Fi pooling is the identity, so all-Lo-Fi HiLo is plain MHA
    q, k, v = rand(2, 4, 12, 8), rand(2, 4, 12, 8, seed=1), rand(2, 4, 12, 8, seed=2)
    out = attention(AttentionSpec(4, 4, 8, kv_source=HiLo((3, 4), (1, 1), 0)), query=q, key=k, value=v)
    torch.testing.assert_close(out, attention(AttentionSpec(4, 4, 8), query=q, key=k, value=v))


@pytest.mark.parametrize("batch,image,kernel", [(2, (4, 5), (2, 2)), (3, (6, 6), (3, 3))])
def test_convshare(batch, image, kernel):
    torch.manual_seed(1)
    m = ConvShareAttention(16, 2, image, kernel)
    graph, _ = check_variant(m, (rand(batch, image[0] * image[1], 16),), {"kv_source": ConvShare(image, kernel)})
    assert graph.outputs[0].shape[1] == (image[0] - kernel[0] + 1) * (image[1] - kernel[1] + 1)


def test_convshare_unit_kernel_is_plain_attention():
    q, k, v = rand(2, 2, 12, 8), rand(2, 2, 12, 8, seed=1), rand(2, 2, 12, 8, seed=2)
    one = torch.ones(1, 1)
    out = attention(AttentionSpec(2, 2, 8, kv_source=ConvShare((3, 4), (1, 1))), query=q, key=k, value=v,
                    conv_q=one, conv_k=one, conv_v=one)
    torch.testing.assert_close(out, attention(AttentionSpec(2, 2, 8), query=q, key=k, value=v))


def test_vision_configuration_errors():
    with pytest.raises(SpecError, match="window width 3 does not divide image width 4"):
        HiLoAttention(32, 4, (3, 4), (1, 3), local_heads=2)
    with pytest.raises(ValueError, match="local_heads"):
        HiLoAttention(32, 4, (3, 4), (1, 2), local_heads=5)
    with pytest.raises(SpecError, match="larger than image"):
        ConvShareAttention(16, 2, (3, 3), (4, 4))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        ConvShareAttention(15, 2, (3, 3), (2, 2))
