"""Latent-KV attention modules: MLA (DeepSeek-V2/V3) and MTLA (temporal latent merge)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import MLA, MTLA
from ._base import apply_rope, check, merge_heads, param, rms_norm, rope_tables, split_heads, yarn_inv_freq, yarn_mscale
from .custom_op import attention


class MultiHeadLatentAttention(nn.Module):
    """Multi-head latent attention ("DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language
    Model", 2024; DeepSeek-V3): keys/values are up-projections (W_UK, W_UV) of one compressed latent c_kv per
    token, plus a decoupled RoPE key k_pe shared by all heads. Only [c_kv | k_pe] is cached: latent_dim + rope_dim
    values per token ("The New LLM Bottleneck"; "A Random Matrix Theory Perspective on MLA" studies the
    decoupled-RoPE choice used here).

    As DeepSeek-V2/V3 (and transformers' DeepseekV3Attention): the latent passes an RMSNorm (`kv_norm`, the
    checkpoints' kv_a_layernorm) before it is cached and up-projected; `q_lora_rank` selects the low-rank query
    path x -> q_a_proj -> RMSNorm (q_a_layernorm) -> q_b_proj; `rope_interleave` rotates channel pairs (2i, 2i+1)
    (DeepSeek's checkpoint layout); `rope_scaling` = {"rope_type": "yarn", "factor", "original_max_position_embeddings",
    "beta_fast", "beta_slow", "mscale", "mscale_all_dim"} applies YaRN: scaled frequencies, cos/sin multiplied by
    mscale(factor, mscale)/mscale(factor, mscale_all_dim) and the softmax scale by mscale(factor, mscale_all_dim)².
    `load_deepseek_v3(hf_attention)` copies a transformers DeepseekV3Attention's weights.

    `absorbed=True` runs the decode-friendly order (W_UK folded into q, W_UV applied to the attention output);
    it equals the naive order. forward(x, cache=None) -> y, or (y, new_cache) when a cache (B, P, latent+rope)
    is passed (decode): the new tokens sit at positions P.. and attend causally to the whole cache.
    """

    def __init__(self, embed_dim: int, num_heads: int, latent_dim: int, nope_dim: int, rope_dim: int,
                 v_head_dim: int, absorbed: bool = False, max_len: int = 4096, q_lora_rank: int | None = None,
                 kv_norm: bool = True, norm_eps: float = 1e-6, bias: bool = True, rope_theta: float = 10000.0,
                 rope_interleave: bool = False, rope_scaling: dict | None = None):
        super().__init__()
        check(rope_dim % 2 == 0, f"rope_dim must be even, got {rope_dim}")
        check(min(num_heads, latent_dim, nope_dim, v_head_dim) > 0, "num_heads, latent_dim, nope_dim, v_head_dim must be positive")
        check(q_lora_rank is None or q_lora_rank > 0, f"q_lora_rank must be None or positive, got {q_lora_rank}")
        self.num_heads, self.latent_dim, self.nope_dim, self.rope_dim = num_heads, latent_dim, nope_dim, rope_dim
        self.norm_eps, self.rope_interleave = norm_eps, rope_interleave
        qd = num_heads * (nope_dim + rope_dim)
        if q_lora_rank is None:
            self.q_proj = nn.Linear(embed_dim, qd, bias=bias)
        else:
            self.q_a_proj = nn.Linear(embed_dim, q_lora_rank, bias=bias)
            self.q_a_norm = nn.Parameter(torch.ones(q_lora_rank))
            self.q_b_proj = nn.Linear(q_lora_rank, qd, bias=False)
        self.q_lora_rank = q_lora_rank
        self.kv_down = nn.Linear(embed_dim, latent_dim + rope_dim, bias=bias)
        self.kv_norm = nn.Parameter(torch.ones(latent_dim)) if kv_norm else None
        self.w_uk = param(latent_dim, num_heads, nope_dim)
        self.w_uv = param(latent_dim, num_heads, v_head_dim)
        self.o_proj = nn.Linear(num_heads * v_head_dim, embed_dim, bias=bias)
        self.softmax_scale = 1 / math.sqrt(nope_dim + rope_dim)
        cos, sin = self._rope_tables(max_len, rope_theta, rope_scaling)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.set_absorbed(absorbed)

    def _rope_tables(self, max_len: int, theta: float, scaling: dict | None):
        if not scaling or scaling.get("rope_type", "default") == "default":
            return rope_tables(max_len, self.rope_dim, theta)
        check(scaling.get("rope_type") == "yarn",
              f"rope_scaling: only rope_type 'yarn' (or 'default') is supported, got {scaling.get('rope_type')!r}")
        check("factor" in scaling and "original_max_position_embeddings" in scaling,
              "rope_scaling (yarn) needs 'factor' and 'original_max_position_embeddings'")
        factor = float(scaling["factor"])
        inv = yarn_inv_freq(self.rope_dim, theta, factor, int(scaling["original_max_position_embeddings"]),
                            scaling.get("beta_fast") or 32, scaling.get("beta_slow") or 1, scaling.get("truncate", True))
        m, m_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
        attn = scaling.get("attention_factor") or (yarn_mscale(factor, m) / yarn_mscale(factor, m_all) if m and m_all
                                                   else yarn_mscale(factor))
        if m_all:   # DeepSeek folds mscale_all_dim² into the softmax scale
            self.softmax_scale *= yarn_mscale(factor, m_all) ** 2
        ang = torch.arange(max_len, dtype=torch.float32)[:, None] * inv[None, :]
        return ang.cos() * attn, ang.sin() * attn

    def set_absorbed(self, absorbed: bool) -> None:
        """Switch between the naive and the absorbed computation order (same numbers)."""
        d = self.nope_dim + self.rope_dim
        self.spec = AttentionSpec(self.num_heads, 1, d, v_head_dim=self.w_uv.shape[-1], scale=self.softmax_scale,
                                  mask=MaskSpec(causal=True, alignment="bottom_right"),
                                  kv_source=MLA(self.latent_dim, self.rope_dim, absorbed))

    @property
    def kv_cache_per_token(self) -> int:
        return self.spec.kv_source.kv_cache_per_token

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if self.rope_interleave:   # pairs (2i, 2i+1): lay evens then odds out, then rotate halves (same dot products)
            x = torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)
        return apply_rope(x, cos, sin)

    def _query(self, x: torch.Tensor) -> torch.Tensor:
        if self.q_lora_rank is None:
            return self.q_proj(x)
        return self.q_b_proj(rms_norm(self.q_a_proj(x), self.q_a_norm, self.norm_eps))

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None):
        B, S, _ = x.shape
        P = 0 if cache is None else cache.shape[1]
        cos, sin = self.cos[P:P + S], self.sin[P:P + S]
        q = split_heads(self._query(x), self.num_heads)
        q = torch.cat([q[..., :self.nope_dim], self._rope(q[..., self.nope_dim:], cos, sin)], dim=-1)
        kv = self.kv_down(x)
        latent = kv[..., :self.latent_dim]
        if self.kv_norm is not None:
            latent = rms_norm(latent, self.kv_norm, self.norm_eps)
        entry = torch.cat([latent, self._rope(kv[..., self.latent_dim:], cos, sin)], dim=-1)
        full = entry if cache is None else torch.cat([cache, entry], dim=1)
        key = full[:, None]
        o = attention(self.spec, query=q, key=key, value=key[..., :self.latent_dim], w_uk=self.w_uk, w_uv=self.w_uv)
        y = self.o_proj(merge_heads(o))
        return y if cache is None else (y, full)

    @torch.no_grad()
    def load_deepseek_v3(self, hf) -> "MultiHeadLatentAttention":
        """Copy the weights of a transformers DeepseekV3Attention (same dims) into this module; returns self."""
        H, n, dv, L = self.num_heads, self.nope_dim, self.w_uv.shape[-1], self.latent_dim
        pairs = [(self.kv_down, hf.kv_a_proj_with_mqa), (self.o_proj, hf.o_proj)]
        pairs += [(self.q_proj, hf.q_proj)] if self.q_lora_rank is None else [(self.q_a_proj, hf.q_a_proj),
                                                                              (self.q_b_proj, hf.q_b_proj)]
        for mine, theirs in pairs:
            mine.weight.copy_(theirs.weight)
            if mine.bias is not None:
                check(theirs.bias is not None, "load_deepseek_v3: this module has biases, the checkpoint does not (bias=False)")
                mine.bias.copy_(theirs.bias)
        if self.q_lora_rank is not None:
            self.q_a_norm.copy_(hf.q_a_layernorm.weight)
        check(self.kv_norm is not None, "load_deepseek_v3: DeepSeek-V3 normalizes the latent; build with kv_norm=True")
        self.kv_norm.copy_(hf.kv_a_layernorm.weight)
        wb = hf.kv_b_proj.weight.reshape(H, n + dv, L)          # rows per head: [k_nope | v]
        self.w_uk.copy_(wb[:, :n].permute(2, 0, 1))
        self.w_uv.copy_(wb[:, n:].permute(2, 0, 1))
        return self


class TemporalLatentAttention(nn.Module):
    """Multi-head temporal latent attention ("Multi-head Temporal Latent Attention", Deng & Woodland, NeurIPS 2025;
    the authors' `mtla` package, MultiheadTemporalLatentAttention). MLA's compressed latent c_t = LayerNorm(x W_a)
    (kv_norm) is merged over time in chunks of `stride` tokens, shrinking the KV cache by `stride`:
    m_t = Σ_{u in chunk(t), u <= t} w_u c_u, with the hyper-network weight
    w_u = sigmoid(fc_c(PE(u // stride)) · fc_p(c_u)) (PE: sinusoidal embedding of the chunk index, fc_c/fc_p map the
    latent to latent/hyper_rank). Keys are [m_t W_UK_h | k_pe_t] with the decoupled RoPE key k_pe per token (not
    merged), values m_t W_UV_h (the up-projections carry no bias: the authors use wkv_b's weight only). Queries
    come from q_proj, or the low-rank path q_a_proj -> LayerNorm -> q_b_proj when `q_lora_rank` is set. RoPE rotates
    interleaved pairs (2i, 2i+1) as the authors' complex rotation does. The stride-aware causal mask lets each query
    see the completed chunks before it plus its own partial chunk, matching incremental decoding.
    `load_mtla(authors_module)` copies the weights of a `mtla.MultiheadTemporalLatentAttention`."""

    def __init__(self, embed_dim: int, num_heads: int, latent_dim: int, nope_dim: int, rope_dim: int,
                 v_head_dim: int, stride: int, q_lora_rank: int | None = None, bias: bool = False,
                 hyper_rank: int = 4, rope_theta: float = 10000.0, max_len: int = 4096):
        super().__init__()
        check(stride > 0, f"stride must be a positive int, got {stride}")
        check(rope_dim % 2 == 0, f"rope_dim must be even, got {rope_dim}")
        check(latent_dim // hyper_rank > 0, f"latent_dim ({latent_dim}) // hyper_rank ({hyper_rank}) must be positive")
        self.num_heads, self.latent_dim, self.nope_dim, self.rope_dim = num_heads, latent_dim, nope_dim, rope_dim
        self.q_lora_rank = q_lora_rank
        qd = num_heads * (nope_dim + rope_dim)
        if q_lora_rank is None:
            self.q_proj = nn.Linear(embed_dim, qd, bias=bias)
        else:
            self.q_a_proj = nn.Linear(embed_dim, q_lora_rank, bias=bias)
            self.q_norm = nn.LayerNorm(q_lora_rank)
            self.q_b_proj = nn.Linear(q_lora_rank, qd, bias=bias)
        self.kv_down = nn.Linear(embed_dim, latent_dim + rope_dim, bias=bias)
        self.kv_norm = nn.LayerNorm(latent_dim)
        self.w_uk = param(latent_dim, num_heads, nope_dim)
        self.w_uv = param(latent_dim, num_heads, v_head_dim)
        self.fc_c = nn.Linear(latent_dim, latent_dim // hyper_rank)
        self.fc_p = nn.Linear(latent_dim, latent_dim // hyper_rank)
        self.o_proj = nn.Linear(num_heads * v_head_dim, embed_dim, bias=bias)
        cos, sin = rope_tables(max_len, rope_dim, rope_theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("chunk_pe", _sinusoid(-(-max_len // stride), latent_dim), persistent=False)
        self.spec = AttentionSpec(num_heads, num_heads, nope_dim + rope_dim, v_head_dim=v_head_dim,
                                  scale=1 / math.sqrt(nope_dim + rope_dim), mask=MaskSpec(causal=True),
                                  kv_source=MTLA(stride, rope_dim))

    def _rope(self, x: torch.Tensor, S: int) -> torch.Tensor:
        x = torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)   # interleaved pairs laid out as halves (same dot products)
        return apply_rope(x, self.cos[:S], self.sin[:S])

    def merge_weights(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, S) hyper-network weights sigmoid(fc_c(PE(chunk index)) · fc_p(latent))."""
        S = latent.shape[1]
        chunk = self.chunk_pe.repeat_interleave(self.spec.kv_source.stride, dim=0)[:S]
        return torch.sigmoid((self.fc_c(chunk)[None] * self.fc_p(latent)).sum(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        q = self.q_proj(x) if self.q_lora_rank is None else self.q_b_proj(self.q_norm(self.q_a_proj(x)))
        q = split_heads(q, self.num_heads)
        q = torch.cat([q[..., :self.nope_dim], self._rope(q[..., self.nope_dim:], S)], dim=-1)
        kv = self.kv_down(x)
        c = self.kv_norm(kv[..., :self.latent_dim])
        k_pe = self._rope(kv[..., self.latent_dim:], S)[:, None].expand(-1, self.num_heads, -1, -1)
        k = torch.cat([torch.einsum("bsl,lhn->bhsn", c, self.w_uk), k_pe], dim=-1)
        v = torch.einsum("bsl,lhv->bhsv", c, self.w_uv)
        o = attention(self.spec, query=q, key=k, value=v, merge_weights=self.merge_weights(c))
        return self.o_proj(merge_heads(o))

    @torch.no_grad()
    def load_mtla(self, theirs) -> "TemporalLatentAttention":
        """Copy the weights of the authors' mtla.MultiheadTemporalLatentAttention (a module or its state_dict, same
        dims) into this module; returns self."""
        sd = theirs.state_dict() if isinstance(theirs, nn.Module) else theirs
        names = {"kv_down": "wkv_a", "kv_norm": "kv_norm", "o_proj": "wo", "fc_c": "hypernet_down.fc_c",
                 "fc_p": "hypernet_down.fc_p"}
        names.update({"q_proj": "wq"} if self.q_lora_rank is None else {"q_a_proj": "wq_a", "q_norm": "q_norm",
                                                                        "q_b_proj": "wq_b"})
        for mine, src in names.items():
            sub = {k[len(src) + 1:]: torch.as_tensor(v) for k, v in sd.items() if k.startswith(src + ".")}
            getattr(self, mine).load_state_dict(sub)
        wb = torch.as_tensor(sd["wkv_b.weight"]).reshape(self.num_heads, self.nope_dim + self.w_uv.shape[-1], -1)
        self.w_uk.copy_(wb[:, :self.nope_dim].permute(2, 0, 1))
        self.w_uv.copy_(wb[:, self.nope_dim:].permute(2, 0, 1))
        return self


def _sinusoid(n: int, d: int) -> torch.Tensor:
    """(n, d) sinusoidal embedding, sin on even and cos on odd channels (Vaswani et al. 2017)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe
