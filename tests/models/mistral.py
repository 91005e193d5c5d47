"""Mistral block attention: GQA with sliding-window causal mask (window 4) built from positions, RoPE."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .llama import LlamaRMSNorm, repeat_kv, rotate_half


class MistralAttention(nn.Module):
    def __init__(self, hidden=32, heads=4, kv_heads=1, sliding_window=4, max_pos=32, variant="sdpa"):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.sliding_window, self.variant = sliding_window, variant
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)
        self.norm = LlamaRMSNorm(hidden)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        t = torch.arange(max_pos).float()
        emb = torch.cat([torch.outer(t, inv_freq)] * 2, dim=-1)
        self.register_buffer("cos_cached", emb.cos(), persistent=False)
        self.register_buffer("sin_cached", emb.sin(), persistent=False)

    def forward(self, x):
        B, T, _ = x.shape
        h = self.norm(x)
        q = self.q_proj(h).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.cos_cached[:T], self.sin_cached[:T]
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        i = torch.arange(T)[:, None]
        j = torch.arange(T)[None, :]
        keep = (j <= i) & (j > i - self.sliding_window)
        if self.variant == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)
        else:
            k, v = repeat_kv(k, self.heads // self.kv_heads), repeat_kv(v, self.heads // self.kv_heads)
            scores = torch.matmul(q, k.transpose(2, 3)) / (self.head_dim ** 0.5)
            scores = torch.where(keep, scores, torch.tensor(float("-inf")))
            out = torch.matmul(torch.softmax(scores.float(), dim=-1).type_as(q), v)
        return x + self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


def make_mistral_block(variant: str = "sdpa", batch: int = 2, seq: int = 10):
    torch.manual_seed(0)
    return MistralAttention(variant=variant).eval(), (torch.randn(batch, seq, 32),)
