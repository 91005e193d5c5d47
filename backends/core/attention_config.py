"""Kernel configuration for the CPU attention library (plain Python, no IR dependency)."""
from __future__ import annotations

import math
from dataclasses import dataclass

SUPPORTED_DTYPES = ("float32", "bfloat16", "float16")
MASK_KINDS = ("none", "bool", "additive", "table")   # table: a (1, Hq, 1, entries) fp32 per-head bias table
ALIGNMENTS = ("bottom_right", "top_left")


@dataclass(frozen=True)
class AttentionKernelConfig:
    """One attention problem: out = softmax(mods(scale * q @ k^T)) @ v.

    Layout: q (B, Hq, q_len, D), k (B, Hkv, kv_len, D), v (B, Hkv, kv_len, Dv),
    out (B, Hq, q_len, Dv). Query head h reads kv head h // (Hq // Hkv).

    Rows whose keys are all masked produce 0 (not NaN).
    """

    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    v_head_dim: int
    scale: float
    dtype: str = "float32"
    causal: bool = False
    alignment: str = "bottom_right"
    window_left: int | None = None
    window_right: int | None = None
    softcap: float | None = None
    # ALiBi's max_bias: query head h adds slope_h * (k_pos - q_pos), the slopes in closed form (no input)
    alibi: float | None = None
    # T5's bucketed relative bias (bidirectional, num_buckets, max_distance): head h adds
    # table[h, bucket(k_pos - q_pos)], the table passed as the mask argument (mask_input "table")
    t5_bias: tuple | None = None
    mask_input: str = "none"
    q_block: int | None = None
    kv_block: int | None = None
    num_splits: int | None = None
    # dims the kernel takes from its arguments at run time ("batch", "q_len", "kv_len"); the ints above are
    # then nominal sizes that only pick the schedule
    dynamic: tuple[str, ...] = ()
    # V is the first v_head_dim columns of K (the decomposition's "v-from-k" hint: absorbed MLA), so a kernel
    # may read V from its K tile
    v_from_k: bool = False

    def __post_init__(self):
        self.validate()

    # ---------------------------------------------------------------- checks
    def validate(self) -> None:
        for name in ("batch", "q_heads", "kv_heads", "q_len", "kv_len", "head_dim", "v_head_dim"):
            val = getattr(self, name)
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        if self.q_heads % self.kv_heads != 0:
            raise ValueError(
                f"q_heads ({self.q_heads}) must be a multiple of kv_heads ({self.kv_heads})")
        if not isinstance(self.scale, (int, float)) or not math.isfinite(self.scale):
            raise ValueError(f"scale must be a finite number, got {self.scale!r}")
        if self.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"dtype must be one of {SUPPORTED_DTYPES}, got {self.dtype!r}")
        if self.alignment not in ALIGNMENTS:
            raise ValueError(f"alignment must be one of {ALIGNMENTS}, got {self.alignment!r}")
        for name in ("window_left", "window_right"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val < 0):
                raise ValueError(f"{name} must be None or an int >= 0, got {val!r}")
        if self.softcap is not None and (not isinstance(self.softcap, (int, float))
                                         or not self.softcap > 0 or not math.isfinite(self.softcap)):
            raise ValueError(f"softcap must be None or a finite number > 0, got {self.softcap!r}")
        if self.alibi is not None and (not isinstance(self.alibi, (int, float)) or isinstance(self.alibi, bool)
                                       or not self.alibi > 0 or not math.isfinite(self.alibi)):
            raise ValueError(f"alibi (max_bias) must be None or a finite number > 0, got {self.alibi!r}")
        if isinstance(self.t5_bias, list):
            object.__setattr__(self, "t5_bias", tuple(self.t5_bias))  # from JSON
        if (self.t5_bias is not None) != (self.mask_input == "table"):
            raise ValueError(f"t5_bias {self.t5_bias!r} and mask_input 'table' go together (got {self.mask_input!r})")
        if self.mask_input not in MASK_KINDS:
            raise ValueError(f"mask_input must be one of {MASK_KINDS}, got {self.mask_input!r}")
        for name in ("q_block", "kv_block", "num_splits"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, int) or isinstance(val, bool) or val <= 0):
                raise ValueError(f"{name} must be None or a positive int, got {val!r}")
        if self.kv_block is not None and self.kv_block % 32 != 0:
            raise ValueError(f"kv_block must be a multiple of 32, got {self.kv_block!r}")
        if isinstance(self.dynamic, list):
            object.__setattr__(self, "dynamic", tuple(self.dynamic))  # from JSON
        bad = set(self.dynamic) - {"batch", "q_len", "kv_len"}
        if bad:
            raise ValueError(f"dynamic dims must be among batch, q_len, kv_len; got {sorted(bad)}")
        if self.causal not in (True, False):
            raise ValueError(f"causal must be a bool, got {self.causal!r}")

    # ------------------------------------------------------------ properties
    @property
    def group(self) -> int:
        return self.q_heads // self.kv_heads

    @property
    def position_offset(self) -> int:
        """Absolute position of query row 0 (keys sit at positions 0..kv_len-1)."""
        return self.kv_len - self.q_len if self.alignment == "bottom_right" else 0

    @property
    def eff_window_left(self) -> int | None:
        return self.window_left

    @property
    def eff_window_right(self) -> int | None:
        if self.causal:
            return 0 if self.window_right is None else min(0, self.window_right)
        return self.window_right

    @property
    def has_window(self) -> bool:
        return self.eff_window_left is not None or self.eff_window_right is not None

    def flops(self) -> float:
        """Nominal FLOPs (2*QK + 2*PV over the visible score matrix)."""
        vis = visible_pairs(self)
        return 2.0 * self.batch * self.q_heads * vis * (self.head_dim + self.v_head_dim)


def visible_pairs(cfg: AttentionKernelConfig) -> int:
    """Number of (query, key) pairs left visible by causal/window (ignores mask tensors)."""
    off, wl, wr = cfg.position_offset, cfg.eff_window_left, cfg.eff_window_right
    total = 0
    for i in range(cfg.q_len):
        pos = i + off
        lo = 0 if wl is None else max(0, pos - wl)
        hi = cfg.kv_len - 1 if wr is None else min(cfg.kv_len - 1, pos + wr)
        total += max(0, hi - lo + 1)
    return total
