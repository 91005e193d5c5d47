"""Helpers shared by the reference modules: head split/merge, parameter init, RoPE tables."""
from __future__ import annotations

import math

import torch
from torch import nn


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(B, S, heads·D) -> (B, heads, S, D)."""
    B, S, _ = x.shape
    return x.reshape(B, S, heads, -1).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, S, D) -> (B, S, H·D)."""
    B, H, S, D = x.shape
    return x.transpose(1, 2).reshape(B, S, H * D)


def param(*shape: int, scale: float | None = None) -> nn.Parameter:
    """A normal-initialized parameter with std 1/sqrt(fan_in) (first dim) unless `scale` is given."""
    std = scale if scale is not None else 1.0 / math.sqrt(shape[0])
    return nn.Parameter(torch.randn(*shape) * std)


def check(cond: bool, message: str) -> None:
    """Module construction errors are ValueErrors naming the argument at fault."""
    if not cond:
        raise ValueError(message)


def rope_tables(max_len: int, dim: int, base: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin (max_len, dim/2) for rotate-half RoPE."""
    inv = 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    ang = torch.arange(max_len, dtype=torch.float32)[:, None] * inv[None, :]
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on x (..., S, d) with cos/sin (S, d/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last axis in fp32 (T5/Llama/DeepSeek form): weight · x / sqrt(mean(x²) + eps)."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def yarn_mscale(factor: float, mscale: float = 1.0) -> float:
    """YaRN's attention temperature term 0.1·mscale·ln(factor) + 1 (1 when factor <= 1). Peng et al. 2023,
    "YaRN: Efficient Context Window Extension of Large Language Models", eq. for sqrt(1/t); DeepSeek-V2 §B.2."""
    return 1.0 if factor <= 1 else 0.1 * mscale * math.log(factor) + 1.0


def yarn_inv_freq(dim: int, base: float, factor: float, original_max_len: int, beta_fast: float = 32.0,
                  beta_slow: float = 1.0, truncate: bool = True) -> torch.Tensor:
    """YaRN "NTK-by-parts" inverse frequencies (dim/2,): wavelengths shorter than original_max_len/beta_fast keep
    their frequency, longer than original_max_len/beta_slow are divided by `factor`, a linear ramp in between."""
    def correction_dim(rotations: float) -> float:   # the channel whose wavelength makes `rotations` turns
        return dim * math.log(original_max_len / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001   # a one-channel ramp would divide by zero
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    freq = base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    keep = 1 - ramp                                    # 1 = extrapolate (keep the frequency), 0 = interpolate
    return (1.0 / (factor * freq)) * (1 - keep) + (1.0 / freq) * keep
