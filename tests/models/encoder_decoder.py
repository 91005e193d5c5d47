"""Encoder-decoder (transformer / BART style): encoder self-attention, decoder causal self-attention and
cross-attention from decoder queries to encoder memory (different lengths). Scores divided by sqrt(d)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, heads, variant, causal=False):
        super().__init__()
        self.h, self.d_k = heads, d_model // heads
        self.w_q, self.w_k, self.w_v, self.w_o = (nn.Linear(d_model, d_model) for _ in range(4))
        self.variant, self.causal = variant, causal

    def forward(self, query, key, value):
        B = query.size(0)
        q = self.w_q(query).view(B, -1, self.h, self.d_k).transpose(1, 2)
        k = self.w_k(key).view(B, -1, self.h, self.d_k).transpose(1, 2)
        v = self.w_v(value).view(B, -1, self.h, self.d_k).transpose(1, 2)
        if self.variant == "sdpa":
            x = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
            if self.causal:
                Tq, Tk = scores.shape[-2:]
                causal_mask = torch.triu(torch.ones(Tq, Tk, dtype=torch.bool), diagonal=1)
                scores = scores.masked_fill(causal_mask, float("-inf"))
            x = torch.matmul(scores.softmax(dim=-1), v)
        x = x.transpose(1, 2).contiguous().view(B, -1, self.h * self.d_k)
        return self.w_o(x)


class EncoderDecoder(nn.Module):
    def __init__(self, d_model=32, heads=4, variant="sdpa"):
        super().__init__()
        self.enc_attn = MultiHeadAttention(d_model, heads, variant)
        self.enc_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, heads, variant, causal=True)
        self.cross_attn = MultiHeadAttention(d_model, heads, variant)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, 64), nn.ReLU(), nn.Linear(64, d_model))

    def forward(self, src, tgt):
        memory = self.enc_norm(src + self.enc_attn(src, src, src))
        x = self.norm1(tgt + self.self_attn(tgt, tgt, tgt))
        x = self.norm2(x + self.cross_attn(x, memory, memory))
        return x + self.ff(x)


def make_encoder_decoder(variant: str = "sdpa", batch: int = 2, src_len: int = 9, tgt_len: int = 5):
    torch.manual_seed(0)
    return EncoderDecoder(variant=variant).eval(), (torch.randn(batch, src_len, 32), torch.randn(batch, tgt_len, 32))
