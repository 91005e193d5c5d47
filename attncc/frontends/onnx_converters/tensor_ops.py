"""Shape, layout and typing ops (domain ai.onnx). Shape arguments must be known at import time
(constants or folded shape arithmetic, possibly holding symbolic dims)."""
from __future__ import annotations

import numpy as np

from ...ir import dims as D
from ...ir.ops import Binary, Cast, Concat, Expand, Gather, Reshape, Slice, Transpose, Where
from ...ir.types import broadcast_shapes
from .context import ImportContext, dims_of, ir_dtype
from .registry import converter

INT64_MAX = np.iinfo(np.int64).max


@converter("", "Identity")
def convert_identity(ctx: ImportContext, node):
    return [ctx.input(node, 0)]


@converter("", "Dropout")
def convert_dropout(ctx: ImportContext, node):
    """Inference only: the identity. The mask output is not produced."""
    training = ctx.const(node, 2)
    ctx.check(not ctx.has_input(node, 2) or (training is not None and not bool(training)),
              "training_mode must be a constant false (attncc imports inference graphs)")
    return [ctx.input(node, 0), None]


@converter("", "Cast")
def convert_cast(ctx: ImportContext, node):
    return [ctx.cast(ctx.input(node, 0), ir_dtype(ctx.attr(node, "to"), ctx.where()))]


@converter("", "CastLike")
def convert_castlike(ctx: ImportContext, node):
    return [ctx.cast(ctx.input(node, 0), ctx.input_type(node, 1).dtype)]


@converter("", "Shape")
def convert_shape(ctx: ImportContext, node):
    """The shape of a run-time value is known at import: ints, or dim symbols for dynamic axes."""
    shape = list(ctx.input_type(node, 0).shape)
    start, end = ctx.attr(node, "start", 0), ctx.attr(node, "end", None)
    shape = shape[slice(start, end)]
    dt = np.int64 if all(isinstance(d, int) for d in shape) else object
    return [np.array(shape, dtype=dt)]


@converter("", "Size")
def convert_size(ctx: ImportContext, node):
    n = ctx.input_type(node, 0).numel()
    return [np.array(n, dtype=np.int64 if isinstance(n, int) else object)]


def _reshape_target(ctx: ImportContext, x, target, allowzero: bool) -> tuple:
    out = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            ctx.check(i < x.rank, f"reshape target {list(target)} copies dim {i} (0) but the input has rank {x.rank}")
            out.append(x.shape[i])
        else:
            out.append(d)
    return tuple(out)


@converter("", "Reshape")
def convert_reshape(ctx: ImportContext, node):
    """Reshape to a known target; 0 copies the input dim (unless allowzero), -1 is inferred."""
    x = ctx.input(node, 0)
    target = dims_of(ctx.require_const(node, 1, "shape"))
    return [ctx.add1(Reshape(_reshape_target(ctx, x, target, bool(ctx.attr(node, "allowzero", 0)))), [x])]


@converter("", "Flatten")
def convert_flatten(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    axis = ctx.attr(node, "axis", 1) % (x.rank + 1)
    return [ctx.add1(Reshape((D.product(x.shape[:axis]), D.product(x.shape[axis:]))), [x])]


def _axes(ctx: ImportContext, node, since_input: int = 13):
    if ctx.opsets.get("", 1) >= since_input:
        axes = ctx.const(node, 1)
        ctx.check(not ctx.has_input(node, 1) or axes is not None, "run-time `axes` input is not supported")
        return None if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    return ctx.attr(node, "axes")


@converter("", "Squeeze")
def convert_squeeze(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    axes = _axes(ctx, node)
    if axes is None:
        ctx.check(D.is_static(x.shape), f"Squeeze without axes on {x.type} with symbolic dims is ambiguous")
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {a % x.rank for a in axes}
    for a in axes:
        ctx.check(x.shape[a] == 1 or isinstance(x.shape[a], str), f"cannot squeeze axis {a} of {x.type}")
    return [ctx.add1(Reshape(tuple(d for i, d in enumerate(x.shape) if i not in axes)), [x])]


@converter("", "Unsqueeze")
def convert_unsqueeze(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    axes = _axes(ctx, node)
    rank = x.rank + len(axes)
    axes = sorted(a % rank for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return [ctx.add1(Reshape(tuple(shape)), [x])]


@converter("", "Transpose")
def convert_transpose(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    perm = ctx.attr(node, "perm", list(range(x.rank))[::-1])
    return [ctx.add1(Transpose(tuple(int(p) for p in perm)), [x])]


@converter("", "Concat")
def convert_concat(ctx: ImportContext, node):
    return [ctx.add1(Concat(ctx.attr(node, "axis")), [ctx.input(node, i) for i in range(len(node.input))])]


def _slice_axis(ctx: ImportContext, x, axis: int, start, end, step: int):
    ctx.check(step >= 1, f"Slice with step {step} < 1 (reversal) is not supported")
    n = x.shape[axis]
    start = D.canonical(start) if isinstance(start, str) else int(start)
    end = D.canonical(end) if isinstance(end, str) else int(end)
    if isinstance(end, int) and (end >= INT64_MAX // 2 or (isinstance(n, int) and end >= n)):
        end = None
    if isinstance(start, int) and isinstance(n, int):
        start = max(-n, min(start, n))  # ONNX clamps starts into range
    if start == 0 and end is None and step == 1:
        return x
    return ctx.add1(Slice(axis, start, end, step), [x])


@converter("", "Slice", since=10)
def convert_slice(ctx: ImportContext, node):
    """Per-axis IR Slices from constant starts/ends/axes/steps."""
    x = ctx.input(node, 0)
    starts = ctx.require_const(node, 1, "starts").reshape(-1).tolist()
    ends = ctx.require_const(node, 2, "ends").reshape(-1).tolist()
    axes = ctx.const(node, 3)
    ctx.check(not ctx.has_input(node, 3) or axes is not None, "run-time `axes` input is not supported")
    axes = list(range(len(starts))) if axes is None else [int(a) % x.rank for a in axes.reshape(-1)]
    steps = ctx.const(node, 4)
    ctx.check(not ctx.has_input(node, 4) or steps is not None, "run-time `steps` input is not supported")
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps.reshape(-1)]
    for s, e, a, st in zip(starts, ends, axes, steps):
        x = _slice_axis(ctx, x, a, s, e, st)
    return [x]


@converter("", "Split")
def convert_split(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    axis = ctx.attr(node, "axis", 0) % x.rank
    n_out = len(node.output)
    sizes = ctx.const(node, 1) if ctx.opsets.get("", 1) >= 13 else ctx.attr(node, "split")
    ctx.check(not (ctx.opsets.get("", 1) >= 13 and ctx.has_input(node, 1) and sizes is None),
              "run-time `split` sizes are not supported")
    total = x.shape[axis]
    if sizes is None:
        ctx.check(isinstance(total, int), f"cannot split symbolic axis {axis} ({total}) evenly")
        n = ctx.attr(node, "num_outputs", n_out)
        chunk = -(-total // n)
        sizes = [min(chunk, total - i * chunk) for i in range(n)]
    sizes = [int(s) for s in np.asarray(sizes).reshape(-1)]
    outs, start = [], 0
    for s in sizes:
        outs.append(_slice_axis(ctx, x, axis, start, start + s, 1))
        start += s
    return outs


@converter("", "Gather")
def convert_gather(ctx: ImportContext, node):
    return [ctx.add1(Gather(ctx.attr(node, "axis", 0)), [ctx.input(node, 0), ctx.input(node, 1)])]


def expand_target(ctx: ImportContext, x_shape, target) -> tuple:
    """ONNX Expand broadcasts both ways: the result is broadcast(x.shape, target)."""
    try:
        return broadcast_shapes(tuple(x_shape), tuple(target))
    except Exception:
        ctx.fail(f"cannot expand shape {tuple(x_shape)} to {tuple(target)}")


@converter("", "Expand")
def convert_expand(ctx: ImportContext, node):
    x = ctx.input(node, 0)
    target = expand_target(ctx, x.shape, dims_of(ctx.require_const(node, 1, "shape")))
    return [ctx.add1(Expand(target), [x])]


def filled(ctx: ImportContext, value, dtype: str, shape) -> "object":
    """A tensor of `shape` (dims may be symbolic) filled with `value`: a scalar constant broadcast by Expand."""
    c = ctx.constant(np.full((1,) * len(shape), value), dtype=dtype, name="fill")
    return c if all(d == 1 for d in shape) else ctx.add1(Expand(tuple(shape)), [c])


@converter("", "ConstantOfShape")
def convert_constant_of_shape(ctx: ImportContext, node):
    """Only reached for symbolic shapes (static ones fold): a broadcast scalar."""
    shape = dims_of(ctx.require_const(node, 0, "shape"))
    value = ctx.attr(node, "value", np.zeros(1, np.float32))
    from ...ir.types import dtype_of_numpy

    return [filled(ctx, value.reshape(-1)[0], dtype_of_numpy(value.dtype), shape)]


@converter("", "Trilu", since=14)
def convert_trilu(ctx: ImportContext, node):
    """Keep the lower/upper triangle of a run-time tensor with a constant mask (static last two dims)."""
    x = ctx.input(node, 0)
    rows, cols = x.shape[-2:]
    ctx.check(isinstance(rows, int) and isinstance(cols, int), f"Trilu on symbolic matrix dims {x.type}")
    k = ctx.const(node, 1)
    ctx.check(not ctx.has_input(node, 1) or k is not None, "run-time `k` is not supported")
    k = 0 if k is None else int(k)
    keep = np.triu(np.ones((rows, cols), bool), k) if ctx.attr(node, "upper", 1) else np.tril(np.ones((rows, cols), bool), k)
    zero = ctx.constant(np.zeros(()), dtype=x.dtype, name="zero")
    return [ctx.add1(Where(), [ctx.constant(keep, name="trilu_keep"), x, zero])]


@converter("", "Pad", since=11)
def convert_pad(ctx: ImportContext, node):
    """Constant-mode padding of a run-time tensor: concatenates filled blocks (symbolic dims allowed)."""
    x = ctx.input(node, 0)
    mode = ctx.attr(node, "mode", "constant")
    ctx.check(mode == "constant", f"attribute mode={mode!r} is not supported (only 'constant')")
    pads = [int(p) for p in ctx.require_const(node, 1, "pads").reshape(-1)]
    value = ctx.const(node, 2)
    value = 0 if value is None else value.reshape(-1)[0]
    axes = ctx.const(node, 3)
    axes = list(range(x.rank)) if axes is None else [int(a) % x.rank for a in axes.reshape(-1)]
    n = len(axes)
    for i, ax in enumerate(axes):
        before, after = pads[i], pads[i + n]
        ctx.check(before >= 0 and after >= 0, "negative pads (cropping) are not supported")
        parts = []
        for amount in (before, None, after):
            if amount is None:
                parts.append(x)
            elif amount:
                shape = list(x.shape)
                shape[ax] = amount
                parts.append(filled(ctx, value, x.dtype, shape))
        if len(parts) > 1:
            x = ctx.add1(Concat(ax), parts)
    return [x]


@converter("", "Mod", since=10)
def convert_mod(ctx: ImportContext, node):
    ctx.fail("Mod on run-time tensors is not supported (it is supported on constants, which fold at import)")


__all__ = ["filled", "expand_target", "Binary", "Cast"]
