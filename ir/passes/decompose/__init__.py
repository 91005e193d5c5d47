"""Target-neutral decompositions of attention variant features into plain Attention + standard IR ops.

`DECOMPOSITIONS[kind](builder) -> [output values]` rewrites one Attention node whose spec carries the
feature `kind` into feature-free Attention op(s) (which every backend's flash kernels run) plus
MatMul / Reshape / Transpose / Slice / Concat / Gather / Reduce / Binary / Where / Softmax ops, with the
semantics of the reference (`ir/interpreter/variants/`). A function raises `Undecomposable(reason)`
when the node cannot be rewritten (e.g. a recurrence with no matrix form); the node is then left as is.
One file per feature family, like `ir/ops/attention_features/`.
"""
from __future__ import annotations

from typing import Callable

from ._build import Builder, Undecomposable

DECOMPOSITIONS: dict[str, Callable[[Builder], list]] = {}


def register_decomposition(*kinds: str):
    """Decorator: register `fn(builder) -> [outputs]` for the feature kinds."""

    def deco(fn):
        for kind in kinds:
            DECOMPOSITIONS[kind] = fn
        return fn

    return deco


from . import conformer, convshare, gated_positional, head_mixing, hilo, latent, linear, lowrank, position_bias, score_mods, talking_heads  # noqa: E402,F401

__all__ = ["DECOMPOSITIONS", "Builder", "Undecomposable", "register_decomposition"]
