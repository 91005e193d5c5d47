"""Shape-generic attention kernels: batch, q_len and kv_len as TIR variables bound from the arguments.

`sizes(cfg)` gives the kernel's (B, QL, KL): ints for static dims, int32 variables for the dims in
`cfg.dynamic`. `SizedConfig` is `cfg` seen with those sizes, so the score/mask mods (causal offset,
kv bound, window range) are written once and work for both.
"""
from __future__ import annotations

from tvm import tirx

from ...core.attention_config import AttentionKernelConfig


def sizes(cfg: AttentionKernelConfig) -> tuple:
    """(batch, q_len, kv_len): each an int, or a fresh int32 variable when the dim is dynamic."""
    return tuple(tirx.Var(name, "int32") if name in cfg.dynamic else getattr(cfg, name)
                 for name in ("batch", "q_len", "kv_len"))


class SizedConfig:
    """`cfg` with batch/q_len/kv_len replaced by the kernel's (possibly symbolic) sizes."""

    def __init__(self, cfg: AttentionKernelConfig, batch, q_len, kv_len):
        self._cfg, self.batch, self.q_len, self.kv_len = cfg, batch, q_len, kv_len

    def __getattr__(self, name):
        return getattr(self._cfg, name)

    @property
    def position_offset(self):
        """Absolute position of query row 0 (keys sit at positions 0..kv_len-1)."""
        return self.kv_len - self.q_len if self._cfg.alignment == "bottom_right" else 0
