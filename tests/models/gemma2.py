"""Gemma-2 attention: scale from query_pre_attn_scalar (not head_dim), GQA, attention-logit softcapping
c * tanh(x / c) before the causal mask. torch's SDPA has no softcap, so the "sdpa" form (what HF runs
with attn_implementation="sdpa") drops softcapping and keeps the non-default scale."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .llama import repeat_kv


class Gemma2Attention(nn.Module):
    def __init__(self, hidden=32, heads=4, kv_heads=2, head_dim=8, query_pre_attn_scalar=16.0,
                 attn_logit_softcapping=50.0, variant="sdpa"):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.scaling = query_pre_attn_scalar ** -0.5
        self.softcap, self.variant = attn_logit_softcapping, variant
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)

    def forward(self, x):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, self.head_dim).transpose(1, 2)
        k, v = repeat_kv(k, self.heads // self.kv_heads), repeat_kv(v, self.heads // self.kv_heads)
        if self.variant == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scaling)
        else:
            attn_weights = torch.matmul(q, k.transpose(2, 3)) * self.scaling
            attn_weights = attn_weights / self.softcap
            attn_weights = torch.tanh(attn_weights)
            attn_weights = attn_weights * self.softcap
            causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
            attn_weights = attn_weights.masked_fill(~causal, torch.finfo(attn_weights.dtype).min)
            attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(attn_weights, v)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, -1))


def make_gemma2_block(variant: str = "sdpa", batch: int = 2, seq: int = 7):
    torch.manual_seed(0)
    m = Gemma2Attention(variant=variant).eval()
    with torch.no_grad():  # larger weights so some logits exceed the cap's linear range
        m.q_proj.weight.mul_(8.0)
    return m, (torch.randn(batch, seq, 32),)
