"""Position-bias score mods (ALiBi, T5 buckets, Swin windows): the bias is computed from the spec and added where
the additive mask goes, beside any mask input the op still has; then plain attention."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..attention_ref import attention_reference, register_reference
from ._common import as_f64, finish


def combined_mask(spec, named: dict) -> np.ndarray:
    """(B|1, H, Sq, Skv) additive mask: the spec's bias plus the op's own mask input (bool: -inf where hidden)."""
    f = as_f64(named)
    q, k = f["query"], f["key"]
    mod = spec.score_mods[0]
    bias = mod.bias(spec, q.shape[2], k.shape[2], f.get("rel_table"))[None]
    if spec.mask.input == "additive":
        return bias + f["mask"]
    if spec.mask.input == "bool":
        return np.where(f["mask"].astype(bool), bias, -np.inf)
    return bias


def position_bias_reference(spec, named):
    plain = spec.replace(score_mods=(), mask=dataclasses.replace(spec.mask, input="additive"))
    f = as_f64(named)
    inputs = {"query": f["query"], "key": f["key"], "value": f["value"], "mask": combined_mask(spec, named)}
    return finish(attention_reference(plain, inputs)[0], named)


for _kind in ("alibi", "bucketed_bias", "window_bias"):
    register_reference(_kind)(position_bias_reference)
