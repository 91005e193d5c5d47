"""Reference semantics of scans (CumSum), accumulated in float64 for float inputs."""
from __future__ import annotations

import numpy as np

from .kernels import _f, kernel


def cumsum_reference(x: np.ndarray, axis: int, exclusive: bool = False, reverse: bool = False) -> np.ndarray:
    """Running sum of `x` along `axis` (ONNX CumSum semantics for exclusive/reverse), in x's dtype."""
    a = _f(x)
    if reverse:
        a = np.flip(a, axis)
    y = np.cumsum(a, axis=axis)
    if exclusive:  # shift by one along the axis instead of subtracting, so no rounding is added
        y = np.moveaxis(y, axis, 0)
        y = np.concatenate([np.zeros_like(y[:1]), y[:-1]], axis=0)
        y = np.moveaxis(y, 0, axis)
    if reverse:
        y = np.flip(y, axis)
    return np.ascontiguousarray(y).astype(x.dtype)


@kernel("CumSum")
def _cumsum(op, inputs, node, ctx):
    (x,) = inputs
    return [cumsum_reference(x, op.axis % x.ndim, op.exclusive, op.reverse)]
