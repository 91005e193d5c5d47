"""Reference semantics of Convolution and Pool (numpy, float64 accumulation for float inputs).

Written as a sum over kernel offsets of strided views of the padded input, so it is a different
formulation from the backends' im2col / direct loops.
"""
from __future__ import annotations

import numpy as np

from .kernels import _f, kernel


def _pad(x: np.ndarray, padding, value: float) -> np.ndarray:
    return np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in padding], constant_values=value)


def _window(xp: np.ndarray, offsets, stride, out) -> np.ndarray:
    """xp[..., o0 + s0*i0, o1 + s1*i1] for i < out: the input cells under one kernel offset."""
    idx = tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offsets, stride, out))
    return xp[(Ellipsis,) + idx]


def conv_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride, padding, dilation, groups: int,
                   out_spatial) -> np.ndarray:
    """torch.nn.functional.conv{1,2}d semantics; `out_spatial` is the output's spatial shape."""
    xf, wf = _f(x), _f(w)
    n, c_in = x.shape[:2]
    c_out, c_g = w.shape[:2]
    xp = _pad(xf, padding, 0.0)
    xp = xp.reshape((n, groups, c_g) + xp.shape[2:])
    wg = wf.reshape((groups, c_out // groups, c_g) + w.shape[2:])
    acc = np.zeros((n, groups, c_out // groups) + tuple(out_spatial))
    for k in np.ndindex(*w.shape[2:]):
        cells = _window(xp, [ki * d for ki, d in zip(k, dilation)], stride, out_spatial)  # (n, g, c_g, *out)
        acc += np.einsum("ngc...,goc->ngo...", cells, wg[(Ellipsis,) + k])
    y = acc.reshape((n, c_out) + tuple(out_spatial))
    if b is not None:
        y = y + _f(b).reshape((1, c_out) + (1,) * len(out_spatial))
    return y.astype(x.dtype)


def pool_reference(x: np.ndarray, op, out_spatial) -> np.ndarray:
    """max / avg pooling (torch semantics incl. ceil_mode and count_include_pad), adaptive avg by even windows."""
    kernel, stride = op.windows(x.shape[2:])
    rank = len(kernel)
    padding = op.padding or ((0, 0),) * rank
    dilation = op.dilation or (1,) * rank
    xf = _f(x)
    # extra cells on the right so ceil_mode's last window can be sliced; they never count
    extra = []
    for i in range(rank):
        need = (out_spatial[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
        have = x.shape[2 + i] + padding[i][0] + padding[i][1]
        extra.append(max(0, need - have))
    full = tuple((p[0], p[1] + e) for p, e in zip(padding, extra))
    if op.kind == "max":
        xp = _pad(xf, full, -np.inf)
        y = np.full(x.shape[:2] + tuple(out_spatial), -np.inf)
        for k in np.ndindex(*kernel):
            y = np.maximum(y, _window(xp, [ki * d for ki, d in zip(k, dilation)], stride, out_spatial))
        return y.astype(x.dtype)
    xp = _pad(xf, full, 0.0)
    # divisor: the cells of each window inside the input (+ the padding when count_include_pad)
    inside = np.ones((1, 1) + x.shape[2:])
    mask = _pad(inside, padding, 1.0 if op.count_include_pad else 0.0)
    mask = _pad(mask, tuple((0, e) for e in extra), 0.0)
    total = np.zeros(x.shape[:2] + tuple(out_spatial))
    count = np.zeros((1, 1) + tuple(out_spatial))
    for k in np.ndindex(*kernel):
        total += _window(xp, k, stride, out_spatial)
        count += _window(mask, k, stride, out_spatial)
    return (total / count).astype(x.dtype)


@kernel("Convolution")
def _convolution(op, inputs, node, ctx):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    out_spatial = _out_spatial(op, x, w)
    return [conv_reference(x, w, b, op.stride, op.padding, op.dilation, op.groups, out_spatial)]


def _out_spatial(op, x, w):
    from ..ops.conv import window_output_size

    return tuple(window_output_size(x.shape[2 + i], w.shape[2 + i], op.stride[i], op.padding[i], op.dilation[i])
                 for i in range(x.ndim - 2))


@kernel("Pool")
def _pool(op, inputs, node, ctx):
    (x,) = inputs
    from ..ops.conv import window_output_size

    if op.adaptive:
        out = op.output_size
    else:
        out = tuple(window_output_size(x.shape[2 + i], op.kernel[i], op.stride[i], op.padding[i], op.dilation[i],
                                       op.ceil_mode) for i in range(x.ndim - 2))
    return [pool_reference(x, op, out)]
