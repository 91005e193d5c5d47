"""Linear attention (kernelized, and the ONNX LinearAttention gated / delta recurrences)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ir.ops import AttentionSpec, MaskSpec
from ..ir.ops.attention_features import LinearAttn
from ._projected import ProjectedAttention


class LinearAttention(ProjectedAttention):
    """Linear attention ("Transformers are RNNs", Katharopoulos et al. 2020: φ(q)ᵀ Σ φ(k) vᵀ, optionally normalized)
    and the recurrences of ONNX LinearAttention (opset 27): gated (per-token decay, g = log σ(x W_g)), delta and
    gated_delta (write rate β = σ(x W_β), DeltaNet / Gated DeltaNet). Causal = the recurrence."""

    def __init__(self, embed_dim: int, num_heads: int, num_kv_heads: int | None = None, update_rule: str = "linear",
                 feature_map: str = "identity", normalize: bool = False, causal: bool = True):
        super().__init__(embed_dim, num_heads, num_kv_heads)
        feat = LinearAttn(update_rule, feature_map, normalize)  # validates the rule / map names
        self.uses = feat.extra_inputs()
        if "decay" in self.uses:
            self.decay_proj = nn.Linear(embed_dim, self.num_kv_heads)
        if "beta" in self.uses:
            self.beta_proj = nn.Linear(embed_dim, self.num_kv_heads)
        self.spec = AttentionSpec(num_heads, self.num_kv_heads, self.head_dim, scale=1 / math.sqrt(self.head_dim),
                                  mask=MaskSpec(causal=causal), kv_source=feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.heads(x)
        if "delta" in self.spec.kv_source.update_rule:
            k = k * torch.rsqrt((k * k).sum(-1, keepdim=True))  # the delta rule needs unit keys to stay stable
        extra = {}
        if "decay" in self.uses:
            extra["decay"] = torch.log(torch.sigmoid(self.decay_proj(x))).transpose(1, 2)  # log σ: decay in (0, 1)
        if "beta" in self.uses:
            extra["beta"] = torch.sigmoid(self.beta_proj(x)).transpose(1, 2)
        return self.attend(q, k, v, **extra)
