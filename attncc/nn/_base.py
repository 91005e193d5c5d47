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
