"""Position biases as spec data instead of a dense (B, H, Sq, Skv) additive mask input.

- `alibi`: ALiBi (Press et al., ICLR 2022): head h adds slope_h · (j - pos_i); the slopes are the paper's closed
  form in `max_bias` (`alibi_slopes`), no input.
- `bucketed_bias`: T5's relative bias (Raffel et al., JMLR 2020): head h adds rel_table[h, bucket(j - pos_i)]
  with T5's log-bucket rule (`t5_buckets`); input `rel_table` (H, num_buckets).
- `window_bias`: Swin's relative bias (Liu et al., ICCV 2021): tokens are a (wh, ww) window in row-major order,
  head h adds rel_table[h, (yi - yj + wh - 1)·(2ww - 1) + (xi - xj + ww - 1)]; input `rel_table`
  (H, (2wh - 1)(2ww - 1)).

The bias sits where the additive mask sits in the score chain (after scale and a before-mask softcap). A mask
input may remain beside it (padding, Swin's shifted-window -100 regions): the two are added. Positions
pos_i = i + offset as in MaskSpec (offset = Skv - Sq for bottom_right alignment, else 0). Each is the only score
mod of its op.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ... import dims as D
from ...errors import require
from ..attention_spec import register_feature
from ._common import check, check_plain_context, expect, int_pair, positive_int
from ._score_mod import ScoreMod


def alibi_slopes(num_heads: int, max_bias: float = 8.0) -> np.ndarray:
    """ALiBi's head slopes: 2^(-max_bias·k/n), k = 1..n, n = 2^ceil(log2 H); for H not a power of two the
    even-indexed then odd-indexed slopes, first H (MPT's gen_slopes; equal to BLOOM's build_alibi_tensor at 8)."""
    n = 2 ** math.ceil(math.log2(num_heads))
    s = 2.0 ** (-max_bias * np.arange(1, n + 1, dtype=np.float64) / n)
    if n != num_heads:
        s = np.concatenate([s[1::2], s[::2]])[:num_heads]
    return s


def relative_positions(q_len: int, kv_len: int, alignment: str) -> np.ndarray:
    """(Sq, Skv) int: j - pos_i."""
    offset = kv_len - q_len if alignment == "bottom_right" else 0
    return np.arange(kv_len)[None, :] - (np.arange(q_len)[:, None] + offset)


def t5_buckets(rel: np.ndarray, bidirectional: bool, num_buckets: int, max_distance: int) -> np.ndarray:
    """T5's bucket of each relative position j - i (transformers T5Attention._relative_position_bucket; the log
    in float32 as torch computes it, so bucket edges fall where the model's do)."""
    rel = np.asarray(rel, np.int64)
    out = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out += (rel > 0).astype(np.int64) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore"):
        ratio = np.log(rel.astype(np.float32) / np.float32(max_exact)) / np.float32(math.log(max_distance / max_exact))
    large = max_exact + np.nan_to_num(ratio * np.float32(num_buckets - max_exact), neginf=0.0).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return out + np.where(rel < max_exact, rel, large)


def window_index(wh: int, ww: int) -> np.ndarray:
    """(wh·ww, wh·ww) int: Swin's relative_position_index of a (wh, ww) window, row-major tokens."""
    y, x = np.divmod(np.arange(wh * ww), ww)
    return (y[:, None] - y[None, :] + wh - 1) * (2 * ww - 1) + (x[:, None] - x[None, :] + ww - 1)


@dataclass(frozen=True)
class PositionBias(ScoreMod):
    """Base: a per-head bias computed from positions (and a small table). Stands alone among score mods;
    a mask input may stay beside it."""

    table_entries: ClassVar[bool] = False

    def validate(self, spec):
        check_plain_context(self, spec, allow_mask_tensor=True)
        check(not spec.mask.kv_lengths, f"{self.kind}: kv_lengths is not supported; use a mask input")
        check(spec.score_mods == (self,), f"{self.kind} cannot be combined with other score mods")

    def extra_inputs(self):
        return ("rel_table",) if self.table_entries else ()

    def entries(self) -> int:
        """Rows of rel_table per head (0: no table)."""
        return 0

    def index(self, q_len: int, kv_len: int, alignment: str) -> np.ndarray:
        """(Sq, Skv) int index into a head's table row."""
        raise NotImplementedError

    def bias(self, spec, q_len: int, kv_len: int, table: np.ndarray | None = None) -> np.ndarray:
        """(H, Sq, Skv) float64 bias."""
        idx = self.index(q_len, kv_len, spec.mask.alignment)
        return np.asarray(table, np.float64)[:, idx]

    def check_inputs(self, spec, t, node, B, Sq, Skv) -> None:
        if self.table_entries:
            expect(t, "rel_table", node, True, (spec.num_heads, self.entries()),
                   f"(H, {self.entries()}) = ({spec.num_heads}, {self.entries()})")
        if spec.mask.input != "none":
            m = t["mask"]
            require(m.rank == 4 and all(D.equal(a, 1) or D.equal(a, b) for a, b in zip(m.shape, (B, spec.num_heads, Sq, Skv))),
                    node, f"{self.kind}: mask {m} does not broadcast to (B, H, Sq, Skv) = {(B, spec.num_heads, Sq, Skv)}")
            require(m.dtype == "bool" if spec.mask.input == "bool" else m.is_float, node,
                    f"{self.kind}: {spec.mask.input} mask has dtype {m.dtype}")


@register_feature
@dataclass(frozen=True)
class Alibi(PositionBias):
    """ALiBi: head h adds alibi_slopes(H, max_bias)[h] · (j - pos_i)."""

    kind: ClassVar[str] = "alibi"
    max_bias: float = 8.0

    def __post_init__(self):
        check(isinstance(self.max_bias, (int, float)) and math.isfinite(self.max_bias) and self.max_bias > 0,
              f"alibi.max_bias must be a finite number > 0, got {self.max_bias!r}")

    def bias(self, spec, q_len, kv_len, table=None):
        rel = relative_positions(q_len, kv_len, spec.mask.alignment)
        return alibi_slopes(spec.num_heads, self.max_bias)[:, None, None] * rel[None]


@register_feature
@dataclass(frozen=True)
class BucketedBias(PositionBias):
    """T5: head h adds rel_table[h, t5_buckets(j - pos_i, bidirectional, num_buckets, max_distance)]."""

    kind: ClassVar[str] = "bucketed_bias"
    table_entries: ClassVar[bool] = True
    num_buckets: int = 32
    max_distance: int = 128
    bidirectional: bool = True

    def __post_init__(self):
        positive_int("bucketed_bias", "num_buckets", self.num_buckets)
        positive_int("bucketed_bias", "max_distance", self.max_distance)
        check(isinstance(self.bidirectional, bool), f"bucketed_bias.bidirectional must be a bool, got {self.bidirectional!r}")
        half = self.num_buckets // 2 if self.bidirectional else self.num_buckets
        check(half >= 2 and self.max_distance > half // 2,
              f"bucketed_bias: num_buckets {self.num_buckets} and max_distance {self.max_distance} leave no log buckets "
              f"(need {'num_buckets/2' if self.bidirectional else 'num_buckets'} >= 2 and max_distance > its half)")

    def entries(self):
        return self.num_buckets

    def index(self, q_len, kv_len, alignment):
        return t5_buckets(relative_positions(q_len, kv_len, alignment), self.bidirectional, self.num_buckets,
                          self.max_distance)


@register_feature
@dataclass(frozen=True)
class WindowBias(PositionBias):
    """Swin: the Sq = Skv = wh·ww tokens of a window, head h adds rel_table[h, window_index(wh, ww)[i, j]]."""

    kind: ClassVar[str] = "window_bias"
    table_entries: ClassVar[bool] = True
    window: tuple = (7, 7)

    def __post_init__(self):
        int_pair("window_bias", "window", self.window)

    def entries(self):
        wh, ww = self.window
        return (2 * wh - 1) * (2 * ww - 1)

    def index(self, q_len, kv_len, alignment):
        wh, ww = self.window
        if q_len != wh * ww or kv_len != wh * ww:
            raise ValueError(f"window_bias: window {self.window} has {wh * ww} tokens, got q/k lengths {q_len}/{kv_len}")
        return window_index(wh, ww)

    def check_inputs(self, spec, t, node, B, Sq, Skv):
        n = self.window[0] * self.window[1]
        require(D.equal(Sq, n) and D.equal(Skv, n), node,
                f"window_bias: window {self.window} has {n} tokens, got query/key lengths {Sq}/{Skv}")
        super().check_inputs(spec, t, node, B, Sq, Skv)
