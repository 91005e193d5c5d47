"""Whole plans whose kernels join the calibration suite: every kernel class a model build launches.

The suite of `attncc.calibration` times attention and matmul kernels built one by one; a model's build also
launches norms, elementwise groups (residual adds, SiLU-gated products, GELU), RoPE, layout copies, KV-cache
writes and Linear layers with fused epilogues. `plan_kernel_cases(suite)` compiles a few decoder blocks for the
cpu target and returns one case per kernel of their plans (`suite.plan_cases`: each step run alone on the
values of a full run), priced by the build's own cost report row.

The blocks here deliberately differ from the ones `benchmarks/block_accuracy.py` validates (hidden 256,
examples/models.py and Hugging Face layers): other widths (320-768), head counts, sequence and KV lengths and a
GPT-style block (LayerNorm, biases, GELU), so the whole-block check is not fitted to its own kernels.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class _RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim) + 0.1 * torch.randn(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


def _rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat([-x2, x1], dim=-1)


class LlamaLayer(nn.Module):
    """Pre-norm Llama-style layer (spelled-out RMSNorm, GQA, RoPE, SiLU-gated MLP); with a concatenating KV cache
    when called with past keys/values (decode), causal attention without (prefill)."""

    def __init__(self, hidden: int, heads: int, kv_heads: int, ffn: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, hidden // heads
        self.q = nn.Linear(hidden, hidden, bias=False)
        self.k = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(hidden, kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(hidden, hidden, bias=False)
        self.gate, self.up = nn.Linear(hidden, ffn, bias=False), nn.Linear(hidden, ffn, bias=False)
        self.down = nn.Linear(ffn, hidden, bias=False)
        self.norm1, self.norm2 = _RMSNorm(hidden), _RMSNorm(hidden)
        self.register_buffer("inv_freq", 1.0 / (1e4 ** (torch.arange(0, self.head_dim, 2).float() / self.head_dim)),
                             persistent=False)

    def forward(self, x, past_k=None, past_v=None):
        b, s, _ = x.shape
        past = 0 if past_k is None else past_k.shape[2]
        freqs = torch.outer(torch.arange(past, past + s).float(), self.inv_freq)
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        h = self.norm1(x)
        q = self.q(h).view(b, s, self.heads, self.head_dim).transpose(1, 2)
        k = self.k(h).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v(h).view(b, s, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        if past_k is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            keep = torch.arange(past + s)[None, :] <= torch.arange(s)[:, None] + past
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, s, -1))
        h = self.norm2(x)
        out = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return out if past_k is None else (out, k, v)


class GPTLayer(nn.Module):
    """Pre-norm GPT-2-style layer: LayerNorm, one qkv Linear with bias, causal MHA, GELU MLP with biases."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.fc, self.out = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (t.view(b, s, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


# (label, module factory, input shapes): prefill and decode, widths and lengths unlike block_accuracy.py's
PLANS: list[tuple[str, Any, tuple]] = [
    ("llama h512 GQA8/2 b1 s192", lambda: LlamaLayer(512, 8, 2, 1376), ((1, 192, 512),)),
    ("gpt h384 MHA6 b2 s96", lambda: GPTLayer(384, 6), ((2, 96, 384),)),
    ("llama-decode h512 MHA8 b1 past1024", lambda: LlamaLayer(512, 8, 8, 1376), ((1, 1, 512), (1, 8, 1024, 64), (1, 8, 1024, 64))),
    ("llama-decode h768 GQA12/4 b8 past384", lambda: LlamaLayer(768, 12, 4, 2048),
     ((8, 1, 768), (8, 4, 384, 64), (8, 4, 384, 64))),
    ("llama h384 MHA6 b1 s48", lambda: LlamaLayer(384, 6, 6, 1024), ((1, 48, 384),)),
    ("gpt h640 MHA10 b4 s8", lambda: GPTLayer(640, 10), ((4, 8, 640),)),
    ("llama h320 GQA10/2 b1 s448", lambda: LlamaLayer(320, 10, 2, 864), ((1, 448, 320),)),
    ("gpt h512 MHA8 b1 s320", lambda: GPTLayer(512, 8), ((1, 320, 512),)),
    ("llama-decode h512 GQA8/2 b1 past2048", lambda: LlamaLayer(512, 8, 2, 1376),
     ((1, 1, 512), (1, 2, 2048, 64), (1, 2, 2048, 64))),
    ("llama-decode h384 MHA6 b4 past640", lambda: LlamaLayer(384, 6, 6, 1024), ((4, 1, 384), (4, 6, 640, 64), (4, 6, 640, 64))),
]


def plan_kernel_cases(suite, quick: bool = False) -> list:
    """Compile the blocks of PLANS (a third with `quick`) for the cpu target and return one `suite.plan_cases`
    timing per block, each keeping one case per distinct kernel (the same kernel on the same shapes twice in a
    plan, e.g. the norms, is one sample)."""
    import attncc

    plans = []
    for label, make, shapes in (PLANS[::3] if quick else PLANS):
        torch.manual_seed(0)
        model = make().eval()
        inputs = tuple(torch.randn(*s) for s in shapes)
        with torch.no_grad():
            cm = attncc.compile(model, inputs, target="cpu")
        runner = next(iter(cm.executable.artifacts["program"].runners.values()))
        timing = suite.plan_cases(runner, [t.numpy() for t in inputs], list(cm.report.rows), label)
        seen, unique = set(), []
        for case in timing.cases:
            c = case.job[1]
            key = (case.job[2], c.flops, c.vector_flops, tuple(sorted(c.bytes.items())))
            if key not in seen:
                seen.add(key)
                unique.append(case)
        timing.cases = unique
        plans.append(timing)
    return plans
