"""Models for the mobile target tests: a ViT block with its patch embedding (patchify reshape + Linear, as the
core has no Convolution lowering yet) and the Llama-style decoder layer of examples/models.py."""
from __future__ import annotations

import torch
import torch.nn as nn

from tests.models.vit import ViTBlock


class PatchViT(nn.Module):
    """Image (B, C, H, W) -> 4x4 patches -> Linear embedding + class token + position embedding -> one ViT block."""

    def __init__(self, channels: int = 3, patch: int = 4, image: int = 16, dim: int = 32, heads: int = 4):
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(channels * patch * patch, dim)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, (image // patch) ** 2 + 1, dim) * 0.02)
        self.block = ViTBlock(dim, heads)

    def forward(self, img):
        b, c, h, w = img.shape
        p = self.patch
        x = img.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)
        x = self.embed(x)
        x = torch.cat([self.cls.expand(b, -1, -1), x], dim=1) + self.pos
        return self.block(x)


def make_patch_vit(batch: int = 2):
    torch.manual_seed(0)
    return PatchViT().eval(), (torch.randn(batch, 3, 16, 16),)


def make_decoder_layer(batch: int = 1, seq: int = 8, past: int = 8):
    """examples/models.py DecoderLayer (GQA 4/2, RoPE, KV cache, SwiGLU) on a prefill with a past cache."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "models.py"
    spec = importlib.util.spec_from_file_location("attncc_examples_models", path)
    examples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(examples)
    torch.manual_seed(0)
    layer = examples.DecoderLayer(hidden=64, heads=4, kv_heads=2, ffn=128).eval()
    x = torch.randn(batch, seq, 64)
    past_k, past_v = torch.randn(batch, 2, past, 16), torch.randn(batch, 2, past, 16)
    return layer, (x, past_k, past_v)
