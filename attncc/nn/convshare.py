"""ConvShareViT attention for free-space optical (4f) accelerators."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec
from ..ir.ops.attention_features import ConvShare
from ._base import check, merge_heads, param, split_heads
from .custom_op import attention


class ConvShareAttention(nn.Module):
    """ConvShareViT ("ConvShareViT: Enhancing Vision Transformers with Convolutional Attention Mechanisms for
    Free-Space Optical Accelerators", 2025): the q/k/v linear layers of MHSA become depthwise convolutions whose
    (kh, kw) kernel is shared by every channel, with valid padding (the configuration that learns attention),
    so the layer runs on a 4f system as convolutions. x: (B, h·w, C) row-major tokens -> (B, h'·w', C) with
    h' = h-kh+1, w' = w-kw+1; the output projection is a shared 1x1 convolution, i.e. one scalar weight."""

    def __init__(self, channels: int, num_heads: int, image_size: tuple[int, int], kernel_size: tuple[int, int] | int):
        super().__init__()
        check(num_heads > 0 and channels % num_heads == 0, f"channels {channels} must be divisible by num_heads {num_heads}")
        kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.num_heads = num_heads
        head_dim = channels // num_heads
        feat = ConvShare(tuple(image_size), kernel_size)  # raises when the kernel exceeds the image
        self.conv_q, self.conv_k, self.conv_v = (param(*kernel_size, scale=1 / math.sqrt(kernel_size[0] * kernel_size[1]))
                                                 for _ in range(3))
        self.out_scale = nn.Parameter(torch.ones(()))
        self.spec = AttentionSpec(num_heads, num_heads, head_dim, scale=1 / math.sqrt(head_dim), kv_source=feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = split_heads(x, self.num_heads)
        o = attention(self.spec, query=t, key=t, value=t, conv_q=self.conv_q, conv_k=self.conv_k, conv_v=self.conv_v)
        return self.out_scale * merge_heads(o)
