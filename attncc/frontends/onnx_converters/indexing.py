"""Element gathers (domain ai.onnx): GatherND and GatherElements on run-time data become one IR Gather
over the flattened data at a row-major linear index, so no new IR op (and no new kernel) is needed.

The linear index is computed at import time when the indices are constants (the usual case: exporters
spell advanced indexing such as `mask[batch_idx, kv_idx]` as GatherND with constant indices), else with
integer Binary ops. Symbolic indexed dims give run-time strides (symbolic.dim_scalar). GatherElements whose
inputs are all constants never reaches here: it folds (folding.py).
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.ops import Binary, Gather, Reshape, Slice, Where
from .context import ImportContext
from .symbolic import dim_arange, dim_scalar
from .registry import converter


def _static(ctx: ImportContext, shape, what: str) -> tuple[int, ...]:
    ctx.check(all(isinstance(d, int) for d in shape), f"{what} {tuple(shape)} must be static (it sets the strides)")
    return tuple(int(d) for d in shape)


def _wrapped(ctx: ImportContext, idx, size):
    """Negative indices count from the end of an axis of `size` entries (an int or a symbolic dim)."""
    if isinstance(idx, np.ndarray) and isinstance(size, str):
        ctx.check(bool((idx >= 0).all()), f"a negative constant index on the symbolic axis {size!r}")
        return idx.astype(np.int64)
    if isinstance(idx, np.ndarray):
        ctx.check(bool(((idx >= -size) & (idx < size)).all()), f"an index is out of range for an axis of size {size}")
        return np.where(idx < 0, idx + size, idx).astype(np.int64)
    n = dim_scalar(ctx, size)
    neg = ctx.add1(Binary("lt"), [idx, ctx.constant(np.array(0), dtype="int64", name="zero")])
    return ctx.add1(Where(), [neg, ctx.add1(Binary("add"), [idx, n]), idx])


def _axpy(ctx: ImportContext, acc, idx, stride):
    """acc + idx * stride, on numpy arrays when all are known, else as IR ops (a symbolic stride: run-time)."""
    if isinstance(idx, np.ndarray) and (acc is None or isinstance(acc, np.ndarray)) and isinstance(stride, int):
        return idx * stride if acc is None else acc + idx * stride
    term = ctx.add1(Binary("mul"), [ctx.constant(idx) if isinstance(idx, np.ndarray) else idx, dim_scalar(ctx, stride)])
    if acc is None:
        return term
    return ctx.add1(Binary("add"), [ctx.constant(acc) if isinstance(acc, np.ndarray) else acc, term])


def _gather_flat(ctx: ImportContext, data, lead: int, linear, out_shape: tuple):
    """data viewed as (prod(data.shape[:lead]), *data.shape[lead:]) gathered on axis 0 at `linear`."""
    flat = ctx.add1(Reshape((D.product(data.shape[:lead]),) + tuple(data.shape[lead:])), [data], name="flat")
    index = ctx.constant(linear, name="linear_index") if isinstance(linear, np.ndarray) else linear
    out = ctx.add1(Gather(0), [flat, index])
    return out if tuple(out.shape) == tuple(out_shape) else ctx.add1(Reshape(out_shape), [out])


@converter("", "GatherND", since=11)
def convert_gather_nd(ctx: ImportContext, node):
    data = ctx.input(node, 0)
    ctx.check(int(ctx.attr(node, "batch_dims", 0)) == 0, "batch_dims != 0 is not supported")
    known = ctx.const(node, 1)
    idx_type = ctx.input_type(node, 1)
    k = idx_type.shape[-1]
    ctx.check(isinstance(k, int) and 1 <= k <= data.rank, f"index depth {k} does not fit data of rank {data.rank}")
    sizes = tuple(data.shape[:k])   # symbolic sizes (HF's padding_mask[batch_idx, kv_idx]) give run-time strides
    strides = [D.product(sizes[j + 1:]) for j in range(k)]
    lead = tuple(idx_type.shape[:-1])
    linear = None
    for j in range(k):
        if known is not None:
            part = _wrapped(ctx, np.asarray(known)[..., j].astype(np.int64), sizes[j])
        else:
            idx = ctx.cast(ctx.input(node, 1), "int64")
            part = _wrapped(ctx, ctx.add1(Reshape(lead), [ctx.add1(Slice(-1, j, j + 1), [idx])]), sizes[j])
        linear = _axpy(ctx, linear, part, strides[j])
    return [_gather_flat(ctx, data, k, linear, lead + tuple(data.shape[k:]))]


@converter("", "GatherElements", since=11)
def convert_gather_elements(ctx: ImportContext, node):
    data = ctx.input(node, 0)
    axis = int(ctx.attr(node, "axis", 0)) % data.rank
    shape = tuple(data.shape)
    idx_shape = tuple(ctx.input_type(node, 1).shape)
    # symbolic dims (BERT's token_type_ids buffer expanded to a dynamic batch, read at a dynamic seq's
    # positions) give run-time strides and run-time position grids (symbolic.py)
    ctx.check(len(idx_shape) == len(shape), f"indices {idx_shape} do not fit data {shape}")
    ctx.check(all(D.equal(i, d) or (isinstance(i, int) and isinstance(d, int) and i <= d)
                  for a, (i, d) in enumerate(zip(idx_shape, shape)) if a != axis),
              f"indices {idx_shape} do not fit data {shape} off axis {axis}")
    known = ctx.const(node, 1)
    idx = _wrapped(ctx, np.asarray(known).astype(np.int64) if known is not None else ctx.cast(ctx.input(node, 1), "int64"),
                   shape[axis])
    strides = [D.product(shape[a + 1:]) for a in range(len(shape))]
    # every other axis contributes its own position: out[i, j] = data[i, idx[i, j]] (axis 1)
    linear = None
    for a in range(len(shape)):
        if a == axis:
            linear = _axpy(ctx, linear, idx, strides[a])
        else:
            if idx_shape[a] == 1:
                continue  # position 0 on this axis
            if isinstance(idx_shape[a], str):
                pos = dim_arange(ctx, idx_shape[a], [-1 if b == a else 1 for b in range(len(shape))])
                linear = _axpy(ctx, linear, pos, strides[a])
                continue
            pos = np.arange(idx_shape[a], dtype=np.int64).reshape([-1 if b == a else 1 for b in range(len(shape))])
            if isinstance(idx, np.ndarray):
                pos = np.broadcast_to(pos, idx_shape).copy()
            linear = _axpy(ctx, linear, pos, strides[a])   # broadcasts against the indices
    return [_gather_flat(ctx, data, len(shape), linear, idx_shape)]


@converter("", "IsNaN", since=9)
def convert_isnan(ctx: ImportContext, node):
    """x != x holds exactly for NaN (the IR has no isnan; torch's dynamo exporter guards softmax rows with it)."""
    x = ctx.input(node, 0)
    return [ctx.add1(Binary("ne"), [x, x])]
