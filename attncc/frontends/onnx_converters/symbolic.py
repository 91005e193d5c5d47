"""Shape arithmetic over symbolic dims that reaches run-time data (dynamic batch / sequence exports).

Exporters compute positions and masks from the input's shape: `Range(0, Shape(x)[1], 1)` for position ids,
`Equal`/`Less` against a sequence length, a `Shape`-derived scalar added to a cache length. At import the shape
is known symbolically (folding.py), and the places where such a value is used as data get a run-time tensor
holding it: a symbolic dim d is sum(Expand(1, (d,))), which every backend computes without a new op and which
the cost model prices as d adds. Range with a symbolic count is CumSum over such ones.
"""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.ops import Binary, Concat, CumSum, Expand, Reduce, Reshape
from .context import ImportContext, dims_of
from .registry import converter


def dim_scalar(ctx: ImportContext, d, dtype: str = "int64"):
    """A 0-d run-time tensor holding dim `d` (an int or a symbolic expression)."""
    if isinstance(d, (int, np.integer)):
        return ctx.constant(np.array(int(d)), dtype=dtype, name="dim")
    one = ctx.constant(np.array([1]), dtype=dtype, name="one")
    ones = ctx.add1(Expand((D.canonical(d),)), [one], name="dim_ones")
    return ctx.add1(Reduce("sum", (0,)), [ones], name="dim_value")


def symbolic_tensor(ctx: ImportContext, arr: np.ndarray, dtype: str = "int64"):
    """A run-time tensor with the values of a known object array of dims (scalar or any shape)."""
    flat = [d if isinstance(d, str) else int(d) for d in np.asarray(arr, dtype=object).reshape(-1).tolist()]
    parts = [ctx.add1(Reshape((1,)), [dim_scalar(ctx, d, dtype)], name="dim_entry") for d in flat]
    v = parts[0] if len(parts) == 1 else ctx.add1(Concat(0), parts, name="dims")
    return ctx.add1(Reshape(tuple(np.shape(arr))), [v], name="dims_shaped")


def dim_arange(ctx: ImportContext, d, shape: list, dtype: str = "int64"):
    """[0, d) as a run-time tensor reshaped to `shape` (d symbolic; one -1 entry in `shape` takes it)."""
    one = ctx.constant(np.array([1]), dtype=dtype, name="one")
    ones = ctx.add1(Expand((D.canonical(d),)), [one], name="arange_ones")
    idx = ctx.add1(Binary("sub"), [ctx.add1(CumSum(0), [ones], name="arange_count"), one], name="arange")
    return ctx.add1(Reshape(tuple(D.canonical(d) if s == -1 else s for s in shape)), [idx], name="arange_shaped")


def _scalar_dim(ctx: ImportContext, arr: np.ndarray | None, what: str):
    ctx.check(arr is not None, f"Range's {what} must be known at import (a constant or shape arithmetic)")
    return dims_of(np.asarray(arr).reshape(-1))[0]


@converter("", "Range", since=11)
def convert_range(ctx: ImportContext, node):
    """Range(start, limit, delta) with a symbolic count (all-constant Ranges fold): start + delta * [0, n) with
    n = (limit - start) / delta, computed as CumSum(ones(n)) - 1."""
    start, limit, delta = (_scalar_dim(ctx, ctx.const(node, i), w) for i, w in enumerate(("start", "limit", "delta")))
    ctx.check(isinstance(delta, int) and delta != 0, f"Range with delta {delta!r}; supported: a constant non-zero step")
    span = D.add(limit, D.mul(-1, start))
    if delta == 1:
        count = span
    else:
        ctx.check(isinstance(span, int), f"Range({start}, {limit}, {delta}): a symbolic span needs delta 1")
        count = max(0, -(-span // delta))
    dtype = ctx.input_type(node, 0).dtype
    one = ctx.constant(np.array([1]), dtype=dtype, name="one")
    ones = ctx.add1(Expand((count,)), [one], name="range_ones")
    idx = ctx.add1(Binary("sub"), [ctx.add1(CumSum(0), [ones], name="range_count"), one], name="range_index")
    if delta != 1:
        idx = ctx.add1(Binary("mul"), [idx, ctx.constant(np.array(delta), dtype=dtype, name="delta")])
    if start == 0:
        return [idx]
    return [ctx.add1(Binary("add"), [idx, dim_scalar(ctx, start, dtype)])]
