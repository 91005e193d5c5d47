"""Bundled example models (plain PyTorch, written the way real model code is).

Each `make`-style function returns (module, example_inputs) so the CLI can load it:
    attncc compile examples/models.py:llama_block --report
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim) + 0.1 * torch.randn(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(seq: int, dim: int, theta: float = 10000.0):
    """cos/sin tables (seq, dim) in the duplicated rotate-half layout used by Llama."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(torch.arange(seq).float(), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat([-x2, x1], dim=-1)


class LlamaStyleBlock(nn.Module):
    """Pre-norm decoder block: RMSNorm, GQA causal attention with RoPE, RMSNorm, SiLU-gated MLP."""

    def __init__(self, hidden: int = 256, heads: int = 8, kv_heads: int = 2, ffn: int = 688, max_seq: int = 2048):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.q_proj = nn.Linear(hidden, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, hidden, bias=False)
        self.gate = nn.Linear(hidden, ffn, bias=False)
        self.up = nn.Linear(hidden, ffn, bias=False)
        self.down = nn.Linear(ffn, hidden, bias=False)
        self.norm1, self.norm2 = RMSNorm(hidden), RMSNorm(hidden)
        cos, sin = rope_tables(max_seq, self.head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x):
        b, s, _ = x.shape
        h = self.norm1(x)
        q = self.q_proj(h).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.cos[:s], self.sin[:s]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o_proj(a.transpose(1, 2).reshape(b, s, -1))
        h = self.norm2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def llama_block():
    """(LlamaStyleBlock, (x,)) with batch 2, sequence 128, hidden 256."""
    torch.manual_seed(0)
    return LlamaStyleBlock().eval(), (torch.randn(2, 128, 256),)


class CachedAttention(nn.Module):
    """GQA attention with RoPE at absolute positions and a concatenating KV cache (past in, present out)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, theta: float = 10000.0):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.q_proj = nn.Linear(hidden, heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(heads * self.head_dim, hidden, bias=False)
        self.register_buffer("inv_freq", 1.0 / (theta ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim)),
                             persistent=False)

    def forward(self, x, past_k, past_v):
        b, s, _ = x.shape
        past = past_k.shape[2]
        pos = torch.arange(past, past + s).float()
        freqs = torch.outer(pos, self.inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        q = self.q_proj(x).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        # query i sits at position past + i and sees keys up to it (bottom-right causal)
        keep = torch.arange(past + s)[None, :] <= torch.arange(s)[:, None] + past
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1)), k, v


class DecoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, kv_heads: int, ffn: int):
        super().__init__()
        self.attn = CachedAttention(hidden, heads, kv_heads)
        self.norm1, self.norm2 = RMSNorm(hidden), RMSNorm(hidden)
        self.gate = nn.Linear(hidden, ffn, bias=False)
        self.up = nn.Linear(hidden, ffn, bias=False)
        self.down = nn.Linear(ffn, hidden, bias=False)

    def forward(self, x, past_k, past_v):
        h, k, v = self.attn(self.norm1(x), past_k, past_v)
        x = x + h
        y = self.norm2(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y)), k, v


class TinyLlama(nn.Module):
    """A Llama-style decoder LM with a concatenating KV cache.

    forward(ids (B, S), past_k, past_v (layers, B, kv_heads, P, head_dim)) -> (logits (B, S, vocab),
    present_k, present_v (layers, B, kv_heads, P + S, head_dim)). Prefill passes a cache with P = 0 through
    `prefill` (no cache inputs), decode passes the previous step's present tensors.
    """

    def __init__(self, vocab: int = 512, hidden: int = 256, layers: int = 2, heads: int = 8, kv_heads: int = 2,
                 ffn: int = 688):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(DecoderLayer(hidden, heads, kv_heads, ffn) for _ in range(layers))
        self.norm = RMSNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.kv_heads, self.head_dim = kv_heads, hidden // heads

    def forward(self, ids, past_k, past_v):
        x = self.embed(ids)
        ks, vs = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, past_k[i], past_v[i])
            ks.append(k)
            vs.append(v)
        return self.lm_head(self.norm(x)), torch.stack(ks), torch.stack(vs)


class TinyLlamaPrefill(nn.Module):
    """The prompt pass of `TinyLlama`: no cache in, the full cache out."""

    def __init__(self, lm: TinyLlama):
        super().__init__()
        self.lm = lm

    def forward(self, ids):
        b = ids.shape[0]
        empty = torch.zeros(len(self.lm.layers), b, self.lm.kv_heads, 0, self.lm.head_dim)
        return self.lm(ids, empty, empty)


def tiny_llama(seed: int = 0) -> TinyLlama:
    """A randomly initialised 2-layer TinyLlama (vocab 512, hidden 256, GQA 8/2 heads)."""
    torch.manual_seed(seed)
    return TinyLlama().eval()
