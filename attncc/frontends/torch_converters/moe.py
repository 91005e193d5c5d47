"""Mixture-of-experts routing and expert matmuls (transformers' default `grouped_mm` experts path and
DeepSeek's group-limited router), written with existing IR ops so every backend runs them and the
routing stays exact:

- sort(x, dim, descending): a stable rank by counting (rank[i] = #{j: x[j] before x[i]}, ties by index,
  NaN last as torch puts it), then a one-hot pick of the element of each rank. O(n^2) along the sorted
  axis: MoE sorts tokens*top_k expert ids, not vocabularies.
- histc(x, bins, min, max): torch's CPU bin formula (x - min) * bins / (max - min), truncated, the top edge
  counted in the last bin, out-of-range values dropped; counts as a one-hot sum.
- scatter.value(self, dim, index, value): entries an index names become `value` (DeepSeek's group mask).
- grouped_mm(input (S, K), weight (E, K, N), offs (E,)): rows offs[e-1] <= s < offs[e] use expert e's
  weight, rows past offs[-1] are 0. Spelled densely: one batched MatMul of every row with every expert
  (E, S, N), then a Where on the row's expert and a sum over experts (exact: one term is picked, the
  others are exact zeros). That is E / top_k times the FLOPs of a true grouped GEMM, but it runs on the
  existing matmul kernels with data-dependent offsets and no per-row weight copies.
"""
from __future__ import annotations

import numpy as np

from ...ir.ops import Binary, Concat, MatMul, Reduce, Reshape, Slice, Unary, Where
from . import register_torch_converter

MAX_SORT = 8192  # the rank matrix is n x n per sorted row


def _name(ctx, suffix: str) -> str:
    return f"{ctx.node.name}_{suffix}"


def _unsqueeze(ctx, x, axis: int, suffix: str):
    shape = list(x.shape)
    shape.insert(axis, 1)
    return ctx.emit(Reshape(tuple(shape)), [x], name=_name(ctx, suffix))


def _positions(ctx, n: int, rank: int, axis: int, suffix: str):
    shape = [n if a == axis else 1 for a in range(rank)]
    return ctx.constant(np.arange(n, dtype=np.int64).reshape(shape), name=_name(ctx, suffix))


def _count(ctx, cond, axis: int, suffix: str):
    """Number of True entries of `cond` along `axis` (int64)."""
    ones = ctx.emit(Where(), [cond, ctx.value(1, "int64"), ctx.value(0, "int64")], name=_name(ctx, suffix + "_ones"))
    return ctx.emit(Reduce("sum", (axis,)), [ones], name=_name(ctx, suffix))


def _before(ctx, a, b, descending: bool, is_float: bool):
    """a sorts strictly before b by value (NaN is the largest value, as torch.sort orders it)."""
    first = ctx.emit(Binary("gt" if descending else "lt"), [a, b], name=_name(ctx, "first"))
    if not is_float:
        return first, ctx.emit(Binary("eq"), [a, b], name=_name(ctx, "tie"))
    a_nan = ctx.emit(Binary("ne"), [a, a], name=_name(ctx, "a_nan"))
    b_nan = ctx.emit(Binary("ne"), [b, b], name=_name(ctx, "b_nan"))
    # ascending: a number before a NaN; descending: a NaN before a number
    nan_order = ctx.emit(Binary("and"), [ctx.emit(Unary("not"), [b_nan if descending else a_nan]),
                                         a_nan if descending else b_nan], name=_name(ctx, "nan_order"))
    first = ctx.emit(Binary("or"), [first, nan_order], name=_name(ctx, "first_nan"))
    tie = ctx.emit(Binary("or"), [ctx.emit(Binary("eq"), [a, b]), ctx.emit(Binary("and"), [a_nan, b_nan])],
                   name=_name(ctx, "tie"))
    return first, tie


@register_torch_converter("aten.sort.default", "aten.sort.stable")
def _sort(ctx, args):
    x = args["self"]
    shape = ctx.shape_of(x)
    rank = len(shape)
    if rank == 0:
        return ctx.value(x), ctx.value(0, "int64")
    axis = ctx.axis(args.get("dim", -1), rank)
    n = shape[axis]
    if not isinstance(n, int):
        raise ctx.error(f"sort along a symbolic axis ({n} entries) is not supported; supported: a static axis")
    if n > MAX_SORT:
        raise ctx.error(f"sort of {n} > {MAX_SORT} entries is not supported (ranked by an n x n comparison)")
    descending = bool(args.get("descending", False))
    dt = ctx.dtype_of(x)
    x = ctx.value(x)
    # x_i along axis+1 ("who"), x_j along axis ("against"): (.., n_j, n_i, ..)
    xi = _unsqueeze(ctx, x, axis, "xi")
    xj = _unsqueeze(ctx, x, axis + 1, "xj")
    first, tie = _before(ctx, xj, xi, descending, dt.startswith(("float", "bfloat")))
    j_pos = _positions(ctx, n, rank + 1, axis, "j")
    i_pos = _positions(ctx, n, rank + 1, axis + 1, "i")
    earlier = ctx.emit(Binary("lt"), [j_pos, i_pos], name=_name(ctx, "earlier"))
    ahead = ctx.emit(Binary("or"), [first, ctx.emit(Binary("and"), [tie, earlier])], name=_name(ctx, "ahead"))
    ranks = _count(ctx, ahead, axis, "rank")  # (.., n_i, ..): the output slot of element i
    # slot r (along axis) takes the element i (along axis+1) whose rank is r
    hot = ctx.emit(Binary("eq"), [_unsqueeze(ctx, ranks, axis, "rank_row"), _positions(ctx, n, rank + 1, axis, "r")],
                   name=_name(ctx, "onehot"))
    values = ctx.emit(Reduce("sum", (axis + 1,)), [ctx.emit(Where(), [hot, xi, ctx.value(0, dt)])],
                      name=_name(ctx, "values"))
    indices = ctx.emit(Reduce("sum", (axis + 1,)), [ctx.emit(Where(), [hot, i_pos, ctx.value(0, "int64")])],
                       name=_name(ctx, "indices"))
    return values, indices


@register_torch_converter("aten.histc.default")
def _histc(ctx, args):
    x = args["self"]
    bins, lo, hi = int(args.get("bins", 100)), float(args.get("min", 0)), float(args.get("max", 0))
    if not lo < hi:
        raise ctx.error(f"histc with min={lo} >= max={hi} (range taken from the data) is not supported; "
                        "supported: an explicit min < max")
    dt = ctx.dtype_of(x)
    out_dt = ctx.out_dtype()
    if not dt.startswith(("float", "bfloat")):
        # integer expert ids (transformers' non-CPU path, e.g. a model on the meta device): counted in float32,
        # exact for fewer than 2**24 entries; the counts come back in torch's recorded dtype
        dt = "float32"
    flat = ctx.emit(Reshape((-1,)), [ctx.value(x, dt)], name=_name(ctx, "flat"))
    # torch's CPU kernel: pos = (int64)((x - min) * bins / (max - min)); x == max goes to the last bin
    pos = ctx.emit(Binary("mul"), [ctx.emit(Binary("sub"), [flat, ctx.value(lo, dt)]), ctx.value(float(bins), dt)])
    pos = ctx.emit(Unary("floor"), [ctx.emit(Binary("div"), [pos, ctx.value(hi - lo, dt)])], name=_name(ctx, "bin"))
    pos = ctx.emit(Binary("min"), [pos, ctx.value(float(bins - 1), dt)], name=_name(ctx, "bin_top"))
    inside = ctx.emit(Binary("and"), [ctx.emit(Binary("ge"), [flat, ctx.value(lo, dt)]),
                                      ctx.emit(Binary("le"), [flat, ctx.value(hi, dt)])], name=_name(ctx, "inside"))
    edges = ctx.constant(np.arange(bins, dtype=np.dtype(dt) if dt != "bfloat16" else np.float32).reshape(bins, 1),
                         name=_name(ctx, "bins"))
    hit = ctx.emit(Binary("and"), [ctx.emit(Binary("eq"), [_unsqueeze(ctx, pos, 0, "bin_row"), ctx.value(edges, dt)]),
                                   _unsqueeze(ctx, inside, 0, "inside_row")], name=_name(ctx, "hit"))
    counts = ctx.emit(Where(), [hit, ctx.value(1.0, dt), ctx.value(0.0, dt)], name=_name(ctx, "ones"))
    total = ctx.emit(Reduce("sum", (1,)), [counts])
    return total if out_dt == dt else ctx.value(total, out_dt)


@register_torch_converter("aten.scatter.value")
def _scatter_value(ctx, args):
    x, index, fill = args["self"], args["index"], args["value"]
    shape, ishape = ctx.shape_of(x), ctx.shape_of(index)
    rank = len(shape)
    axis = ctx.axis(args["dim"], rank)
    n = shape[axis]
    if not isinstance(n, int):
        raise ctx.error(f"scatter along a symbolic axis ({n} entries) is not supported; supported: a static axis")
    if len(ishape) != rank or any(a != axis and ishape[a] != shape[a] for a in range(rank)):
        raise ctx.error(f"scatter index {tuple(ishape)} must match self {tuple(shape)} off axis {axis} "
                        "(a smaller index block is not supported)")
    if not isinstance(fill, (bool, int, float)):
        raise ctx.error(f"scatter value must be a Python number, got {type(fill).__name__}")
    dt = ctx.dtype_of(x)
    idx = ctx.value(index, "int64")
    wrapped = ctx.emit(Binary("add"), [idx, ctx.value(n, "int64")], name=_name(ctx, "wrapped"))
    idx = ctx.emit(Where(), [ctx.emit(Binary("lt"), [idx, ctx.value(0, "int64")]), wrapped, idx])
    # (.., k, 1, ..) index against positions (.., 1, n, ..): hit if any k names the position
    hot = ctx.emit(Binary("eq"), [_unsqueeze(ctx, idx, axis + 1, "index"), _positions(ctx, n, rank + 1, axis + 1, "pos")],
                   name=_name(ctx, "onehot"))
    hit = ctx.emit(Binary("gt"), [_count(ctx, hot, axis, "hits"), ctx.value(0, "int64")], name=_name(ctx, "hit"))
    return ctx.emit(Where(), [hit, ctx.value(fill, dt), ctx.value(x)])


@register_torch_converter("transformers.grouped_mm_fallback.default", "aten._grouped_mm.default")
def _grouped_mm(ctx, args):
    x = args.get("input", args.get("self"))
    w = args.get("weight", args.get("mat2"))
    offs = args.get("offs")
    xs, ws = ctx.shape_of(x), ctx.shape_of(w)
    if offs is None or len(xs) != 2 or len(ws) != 3:
        raise ctx.error(f"grouped_mm of {tuple(xs)} x {tuple(ws)} with offs={offs is not None} is not supported; "
                        "supported: 2-D input (rows sorted by expert) x 3-D expert weights with offsets")
    if args.get("bias") is not None:
        raise ctx.error("grouped_mm with a bias is not supported")
    experts, rows = ws[0], xs[0]
    if not isinstance(experts, int):
        raise ctx.error(f"grouped_mm over a symbolic number of experts ({experts}) is not supported")
    out_dtype = args.get("out_dtype")
    dt = ctx.dtype_of(w)
    x = ctx.value(x, dt)
    ends = ctx.emit(Reshape((experts, 1)), [ctx.value(offs, "int64")], name=_name(ctx, "ends"))
    starts = ends if experts == 1 else ctx.emit(Slice(0, 0, experts - 1, 1), [ends], name=_name(ctx, "starts"))
    zero = ctx.constant(np.zeros((1, 1), np.int64), name=_name(ctx, "zero"))
    starts = zero if experts == 1 else ctx.emit(Concat(0), [zero, starts], name=_name(ctx, "starts"))
    row = ctx.emit(Reshape((1, rows)), [_row_positions(ctx, x, rows)], name=_name(ctx, "row"))
    mine = ctx.emit(Binary("and"), [ctx.emit(Binary("ge"), [row, starts]), ctx.emit(Binary("lt"), [row, ends])],
                    name=_name(ctx, "mine"))  # (E, S): row s belongs to expert e
    every = ctx.emit(MatMul(), [ctx.emit(Reshape((1, rows, xs[1])), [x]), ctx.value(w)], name=_name(ctx, "every"))
    mine = ctx.emit(Reshape((experts, rows, 1)), [mine], name=_name(ctx, "mine3"))
    picked = ctx.emit(Where(), [mine, every, ctx.value(0, dt)], name=_name(ctx, "picked"))
    out = ctx.emit(Reduce("sum", (0,)), [picked])
    if out_dtype is not None:
        from .context import ir_dtype
        out = ctx.value(out, ir_dtype(out_dtype))
    return out


def _row_positions(ctx, x, rows):
    """arange(rows) as int64; a symbolic row count counts ones along the input's first axis."""
    if isinstance(rows, int):
        return ctx.constant(np.arange(rows, dtype=np.int64), name=_name(ctx, "rows"))
    from ...ir.ops import CumSum, Expand
    ones = ctx.emit(Expand((rows,)), [ctx.value(1, "int64")], name=_name(ctx, "row_ones"))
    return ctx.emit(Binary("sub"), [ctx.emit(CumSum(0), [ones]), ctx.value(1, "int64")], name=_name(ctx, "rows"))
