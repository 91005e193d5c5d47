"""Llama block in HF style: RMSNorm (float32 upcast), rotate-half RoPE from inv_freq computed in the
graph, GQA (repeat_kv in eager, enable_gqa in sdpa), functional KV cache (cat past + new),
bottom-right causal bool mask from positions, SiLU-gated MLP."""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size) + 0.1 * torch.randn(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    batch, num_key_value_heads, slen, head_dim = hidden_states.shape
    if n_rep == 1:
        return hidden_states
    hidden_states = hidden_states[:, :, None, :, :].expand(batch, num_key_value_heads, n_rep, slen, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, slen, head_dim)


class LlamaAttention(nn.Module):
    def __init__(self, hidden, heads, kv_heads, variant):
        super().__init__()
        self.head_dim = hidden // heads
        self.num_heads, self.num_key_value_heads = heads, kv_heads
        self.num_key_value_groups = heads // kv_heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(hidden, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, hidden, bias=False)
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, self.head_dim, 2, dtype=torch.int64).float() / self.head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.variant = variant

    def forward(self, x, past_key, past_value):
        bsz, q_len, _ = x.shape
        past_len = past_key.shape[2]
        position_ids = torch.arange(past_len, past_len + q_len).unsqueeze(0)
        freqs = (self.inv_freq[None, :, None].float() @ position_ids[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(x.dtype).unsqueeze(1), emb.sin().to(x.dtype).unsqueeze(1)
        q = self.q_proj(x).view(bsz, q_len, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(bsz, q_len, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        k = torch.cat([past_key, k], dim=2)
        v = torch.cat([past_value, v], dim=2)
        kv_len = k.shape[2]
        # query i sits at position past_len + i and sees keys j <= past_len + i (bottom-right causal)
        keep = torch.arange(kv_len)[None, :] <= (torch.arange(q_len)[:, None] + past_len)
        if self.variant == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)
        else:
            ks, vs = repeat_kv(k, self.num_key_value_groups), repeat_kv(v, self.num_key_value_groups)
            attn_weights = torch.matmul(q, ks.transpose(2, 3)) * self.scaling
            attn_weights = attn_weights.masked_fill(~keep, torch.finfo(attn_weights.dtype).min)
            attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(attn_weights, vs)
        out = out.transpose(1, 2).reshape(bsz, q_len, -1)
        return self.o_proj(out), k, v


class LlamaBlock(nn.Module):
    def __init__(self, hidden=32, heads=4, kv_heads=2, intermediate=64, variant="sdpa"):
        super().__init__()
        self.input_layernorm = LlamaRMSNorm(hidden)
        self.self_attn = LlamaAttention(hidden, heads, kv_heads, variant)
        self.post_attention_layernorm = LlamaRMSNorm(hidden)
        self.gate_proj = nn.Linear(hidden, intermediate, bias=False)
        self.up_proj = nn.Linear(hidden, intermediate, bias=False)
        self.down_proj = nn.Linear(intermediate, hidden, bias=False)

    def forward(self, x, past_key, past_value):
        h, present_key, present_value = self.self_attn(self.input_layernorm(x), past_key, past_value)
        x = x + h
        y = self.post_attention_layernorm(x)
        x = x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))
        return x, present_key, present_value


def make_llama_block(variant: str = "sdpa", batch: int = 2, seq: int = 6, past: int = 4):
    torch.manual_seed(0)
    m = LlamaBlock(variant=variant).eval()
    return m, (torch.randn(batch, seq, 32), torch.randn(batch, 2, past, 8), torch.randn(batch, 2, past, 8))
