"""AttentionSpec: the attention variant as data.

One spec covers MHA/MQA/GQA (by the ratio of query to kv heads), masks, softcap,
RoPE, KV cache, and — through the `kv_source` and `head_mixing` slots — the
variants of the literature (MLA, MTLA, HiLo, mixture-of-heads, ...). Feature
classes register themselves by `kind` so `to_dict`/`from_dict` round-trip.

Canonical tensor layout is (batch, heads, seq, head_dim) ("bhsd"); "bshd" is the
transposed form some frontends produce before canonicalization.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

MASK_INPUTS = ("none", "bool", "additive")
ALIGNMENTS = ("top_left", "bottom_right")
ROPE_STYLES = ("rotate_half", "interleaved")
LAYOUTS = ("bhsd", "bshd")
SOFTCAP_ORDERS = ("before_mask", "after_mask")


class SpecError(ValueError):
    """An invalid AttentionSpec field; the message names the field and the allowed values."""


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise SpecError(message)


@dataclass(frozen=True)
class MaskSpec:
    """Which (query, key) pairs may attend.

    Positions: query i sits at absolute position i + offset, offset = kv_len - q_len for
    "bottom_right" alignment (KV cache / decode; ONNX Attention's is_causal) and 0 for
    "top_left" (torch SDPA's is_causal). Key j is visible iff
    pos_i - window_left <= j <= pos_i + window_right; `causal` means window_right = 0.
    `input` adds an explicit mask tensor broadcastable to (B, Hq, Sq, Skv): a bool keep-mask
    (True = attend) or an additive float bias. `kv_lengths` adds an int (B,) input of
    valid (non-padded) KV lengths.
    """

    causal: bool = False
    alignment: str = "top_left"
    window_left: int | None = None
    window_right: int | None = None
    input: str = "none"
    kv_lengths: bool = False

    def __post_init__(self):
        _check(self.alignment in ALIGNMENTS, f"mask.alignment {self.alignment!r} not in {ALIGNMENTS}")
        _check(self.input in MASK_INPUTS, f"mask.input {self.input!r} not in {MASK_INPUTS}")
        for name in ("window_left", "window_right"):
            w = getattr(self, name)
            _check(w is None or (isinstance(w, int) and w >= 0), f"mask.{name} must be None or an int >= 0, got {w!r}")

    @property
    def effective_window_right(self) -> int | None:
        """Right window after folding `causal` in (0 when causal)."""
        if self.causal:
            return 0 if self.window_right is None else min(0, self.window_right)
        return self.window_right

    @property
    def is_windowed(self) -> bool:
        return self.window_left is not None

    @property
    def is_empty(self) -> bool:
        return not (self.causal or self.window_left is not None or self.window_right is not None
                    or self.input != "none" or self.kv_lengths)


@dataclass(frozen=True)
class RopeSpec:
    """Rotary position embedding applied to q and the new k before attention.

    cos/sin inputs have shape (B or 1, Sq, rotary_dim // 2) and hold the per-position,
    per-frequency values; `style` picks which channel pairs rotate together:
    rotate_half pairs (i, i + rotary_dim/2) (GPT-NeoX/Llama), interleaved pairs (2i, 2i+1) (GPT-J).
    Channels past rotary_dim pass through (partial RoPE).
    """

    style: str = "rotate_half"
    rotary_dim: int = 0

    def __post_init__(self):
        _check(self.style in ROPE_STYLES, f"rope.style {self.style!r} not in {ROPE_STYLES}")
        _check(self.rotary_dim > 0 and self.rotary_dim % 2 == 0, f"rope.rotary_dim must be a positive even int, got {self.rotary_dim}")


# ---- variant slots: KV-source transforms and head mixing -----------------------------
FEATURE_REGISTRY: dict[str, type] = {}


def register_feature(cls):
    """Register a KV-source / head-mixing / score feature class by its `kind` for (de)serialization."""
    FEATURE_REGISTRY[cls.kind] = cls
    return cls


@dataclass(frozen=True)
class Feature:
    """Base of the pluggable spec slots. `kind` names it; `extra_inputs` lists the inputs it adds."""

    kind: ClassVar[str] = "feature"
    # label used by `AttentionSpec.variant` when this feature defines the variant (None = keep the head-ratio label)
    variant_label: ClassVar[str | None] = None

    def extra_inputs(self) -> tuple[str, ...]:
        return ()

    def validate(self, spec: "AttentionSpec") -> None:
        """Raise SpecError when this feature is inconsistent with the rest of the spec."""

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["kind"] = self.kind
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def feature_from_dict(d: dict[str, Any] | None):
    """Rebuild a registered feature from `Feature.to_dict()` output."""
    if d is None:
        return None
    d = dict(d)
    kind = d.pop("kind")
    _check(kind in FEATURE_REGISTRY, f"unknown attention feature kind {kind!r}; known: {sorted(FEATURE_REGISTRY)}")
    cls = FEATURE_REGISTRY[kind]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


@dataclass(frozen=True)
class AttentionSpec:
    """The attention variant as data. See module docstring for layouts."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int | None = None
    scale: float | None = None
    softcap: float | None = None
    softcap_order: str = "before_mask"
    mask: MaskSpec = field(default_factory=MaskSpec)
    rope: RopeSpec | None = None
    kv_cache: bool = False
    layout: str = "bhsd"
    kv_source: Feature | None = None
    head_mixing: Feature | None = None
    score_mods: tuple[Feature, ...] = ()

    def __post_init__(self):
        if self.v_head_dim is None:
            object.__setattr__(self, "v_head_dim", self.head_dim)
        if self.scale is None:
            object.__setattr__(self, "scale", 1.0 / math.sqrt(self.head_dim))
        self.validate()

    def validate(self) -> None:
        """Check every field; raises SpecError naming the field."""
        for name in ("num_heads", "num_kv_heads", "head_dim", "v_head_dim"):
            v = getattr(self, name)
            _check(isinstance(v, int) and v > 0, f"{name} must be a positive int, got {v!r}")
        _check(self.num_heads % self.num_kv_heads == 0,
               f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({self.num_kv_heads})")
        _check(isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0,
               f"scale must be a finite positive number, got {self.scale!r}")
        _check(self.softcap is None or self.softcap > 0, f"softcap must be None or > 0, got {self.softcap!r}")
        _check(self.softcap_order in SOFTCAP_ORDERS, f"softcap_order {self.softcap_order!r} not in {SOFTCAP_ORDERS}")
        _check(self.layout in LAYOUTS, f"layout {self.layout!r} not in {LAYOUTS}")
        if self.rope is not None:
            _check(self.rope.rotary_dim <= self.head_dim,
                   f"rope.rotary_dim ({self.rope.rotary_dim}) exceeds head_dim ({self.head_dim})")
        for feat in self.features_list():
            feat.validate(self)

    # ---- derived ---------------------------------------------------------------------
    @property
    def group_size(self) -> int:
        """Query heads per kv head."""
        return self.num_heads // self.num_kv_heads

    def features_list(self) -> list[Feature]:
        return [f for f in (self.kv_source, self.head_mixing, *self.score_mods) if f is not None]

    @property
    def variant(self) -> str:
        """A label for reports: the variant feature's label, else mha / mqa / gqa by head ratio."""
        for feat in self.features_list():
            if feat.variant_label:
                return feat.variant_label
        if self.num_kv_heads == self.num_heads:
            return "mha"
        if self.num_kv_heads == 1:
            return "mqa"
        return "gqa"

    @property
    def tags(self) -> list[str]:
        """Short descriptions of the active features (causal, window, softcap, rope, kv-cache, ...)."""
        t = []
        m = self.mask
        if m.causal:
            t.append(f"causal({m.alignment})")
        if m.window_left is not None or (m.window_right is not None and not m.causal):
            t.append(f"window({m.window_left},{m.window_right})")
        if m.input != "none":
            t.append(f"{m.input}-mask")
        if m.kv_lengths:
            t.append("kv-lengths")
        if self.softcap:
            t.append(f"softcap({self.softcap:g})")
        if self.rope:
            t.append(f"rope({self.rope.style},{self.rope.rotary_dim})")
        if self.kv_cache:
            t.append("kv-cache")
        t.extend(f.kind for f in self.features_list())
        return t

    def input_names(self) -> tuple[str, ...]:
        """Names of the Attention op's inputs in order; absent optional features add none."""
        names = ["query", "key", "value"]
        if self.mask.input != "none":
            names.append("mask")
        if self.mask.kv_lengths:
            names.append("kv_lengths")
        if self.kv_cache:
            names += ["past_key", "past_value"]
        if self.rope is not None:
            names += ["rope_cos", "rope_sin"]
        for feat in self.features_list():
            names += list(feat.extra_inputs())
        return tuple(names)

    def output_names(self) -> tuple[str, ...]:
        return ("output", "present_key", "present_value") if self.kv_cache else ("output",)

    def replace(self, **changes) -> "AttentionSpec":
        """A copy with fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    # ---- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-data form; `AttentionSpec.from_dict(spec.to_dict()) == spec`."""
        return {
            "num_heads": self.num_heads, "num_kv_heads": self.num_kv_heads, "head_dim": self.head_dim,
            "v_head_dim": self.v_head_dim, "scale": self.scale, "softcap": self.softcap,
            "softcap_order": self.softcap_order, "mask": dataclasses.asdict(self.mask),
            "rope": dataclasses.asdict(self.rope) if self.rope else None, "kv_cache": self.kv_cache,
            "layout": self.layout,
            "kv_source": self.kv_source.to_dict() if self.kv_source else None,
            "head_mixing": self.head_mixing.to_dict() if self.head_mixing else None,
            "score_mods": [f.to_dict() for f in self.score_mods],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AttentionSpec":
        d = dict(d)
        d["mask"] = MaskSpec(**d.get("mask", {}))
        d["rope"] = RopeSpec(**d["rope"]) if d.get("rope") else None
        d["kv_source"] = feature_from_dict(d.get("kv_source"))
        d["head_mixing"] = feature_from_dict(d.get("head_mixing"))
        d["score_mods"] = tuple(feature_from_dict(x) for x in d.get("score_mods", ()))
        return cls(**d)

    def summary(self) -> str:
        """One line: variant, heads, dims, features."""
        heads = f"h={self.num_heads}/kv={self.num_kv_heads}"
        dims = f"d={self.head_dim}" + (f"/dv={self.v_head_dim}" if self.v_head_dim != self.head_dim else "")
        return " ".join([self.variant, heads, dims, f"scale={self.scale:.6g}", *self.tags])
