"""The IR's Convolution op (ir/ops/conv.py: NCL/NCHW, stride, per-side padding, dilation, groups) as 4f
correlations. Every (output channel, input channel) pair is one filter; pairs whose kernels are identical share
one filter load (ConvShareViT's depthwise shared-weight convolutions: one filter for every channel map).
The host pads the input planes before they go to the SLM, sums the C_in/groups partial correlations, adds the
bias and keeps every stride-th output (the 4f system computes every shift; striding saves no optical work).
"""
from __future__ import annotations

import numpy as np

from . import mapping
from .physics import Counters


def dilate(kernel: np.ndarray, dilation: tuple[int, int]) -> np.ndarray:
    """A (kh, kw) kernel with dilation-1 zeros between taps (what the filter SLM shows)."""
    dh, dw = dilation
    kh, kw = kernel.shape
    out = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1))
    out[::dh, ::dw] = kernel
    return out


def conv2d(executor, x: np.ndarray, w: np.ndarray, stride, padding, dilation, groups: int,
           stats: Counters) -> np.ndarray:
    """x (N, C_in, H, W), w (C_out, C_in/groups, kh, kw) -> (N, C_out, OH, OW), torch conv2d semantics."""
    N, c_in = x.shape[:2]
    c_out, cpg = w.shape[:2]
    opg = c_out // groups
    (pt, pb), (pl, pr) = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    # group (out, in) pairs by their kernel: one filter load serves every plane that uses it
    by_kernel: dict[bytes, list[tuple[int, int]]] = {}
    kernels: dict[bytes, np.ndarray] = {}
    for o in range(c_out):
        g = o // opg
        for j in range(cpg):
            k = dilate(w[o, j], dilation)
            key = k.tobytes() + bytes(str(k.shape), "ascii")
            kernels.setdefault(key, k)
            by_kernel.setdefault(key, []).append((o, g * cpg + j))
    kh, kw = next(iter(kernels.values())).shape
    full = np.zeros((N, c_out, xp.shape[2] - kh + 1, xp.shape[3] - kw + 1))
    for key, pairs in by_kernel.items():
        planes = np.concatenate([xp[:, c] for _, c in pairs])            # (len(pairs)·N, H, W)
        out = mapping.correlate_planes(executor.sim, planes, kernels[key], stats).reshape(len(pairs), N, *full.shape[2:])
        for (o, _), y in zip(pairs, out):
            full[:, o] += y
    stats.host_flops += full.size * max(cpg - 1, 0)
    if len(by_kernel) < c_out * cpg:
        stats.notes.append(f"{c_out * cpg} (out, in) kernels, {len(by_kernel)} distinct: shared kernels load once")
    if any(s > 1 for s in stride):
        stats.notes.append(f"stride {tuple(stride)}: every shift computed in light, the host keeps every stride-th")
    return full[:, :, ::stride[0], ::stride[1]]


def convolution(executor, node, args, stats: Counters) -> list[np.ndarray]:
    """Run a Convolution node (1-D as 2-D with a unit height) through the simulated 4f system."""
    op = node.op
    x, w = np.asarray(args[0], np.float64), np.asarray(args[1], np.float64)
    if op.spatial_rank == 1:
        y = conv2d(executor, x[:, :, None, :], w[:, :, None, :], (1, op.stride[0]), ((0, 0), op.padding[0]),
                   (1, op.dilation[0]), op.groups, stats)[:, :, 0, :]
    else:
        y = conv2d(executor, x, w, op.stride, op.padding, op.dilation, op.groups, stats)
    if len(args) > 2 and args[2] is not None:
        b = np.asarray(args[2], np.float64)
        y = y + b.reshape((1, -1) + (1,) * (y.ndim - 2))
        stats.host_flops += y.size
    return [y]
