"""Layout ops: view/reshape, permute/transpose, expand, (un)squeeze, identities, cat/stack,
slice/select/narrow, split/chunk/unbind (as slices), repeat and repeat_interleave (Expand + Reshape)."""
from __future__ import annotations

from ...ir import dims as D
from ...ir.ops import Concat, Expand, Reshape, Slice, Transpose
from . import register_torch_converter

INT64_MAX = 2 ** 63 - 1


def reshape(ctx, x, shape, suffix: str = ""):
    """Reshape x to `shape` (ints, SymInts, symbolic dims, at most one -1)."""
    return ctx.emit(Reshape(tuple(ctx.dim(d) for d in shape)), [x], name=ctx.node.name + suffix)


@register_torch_converter("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default")
def _view(ctx, args):
    return reshape(ctx, args["self"], args["size"])


@register_torch_converter("aten.flatten.using_ints")
def _flatten(ctx, args):
    shape = ctx.shape_of(args["self"])
    if not shape:
        return reshape(ctx, args["self"], [1])
    a, b = ctx.axis(args.get("start_dim", 0), len(shape)), ctx.axis(args.get("end_dim", -1), len(shape))
    return reshape(ctx, args["self"], list(shape[:a]) + [D.product(shape[a:b + 1])] + list(shape[b + 1:]))


@register_torch_converter("aten.unflatten.int")
def _unflatten(ctx, args):
    shape = ctx.shape_of(args["self"])
    a = ctx.axis(args["dim"], len(shape))
    return reshape(ctx, args["self"], list(shape[:a]) + list(args["sizes"]) + list(shape[a + 1:]))


@register_torch_converter("aten.permute.default")
def _permute(ctx, args):
    rank = ctx.rank_of(args["self"])
    return ctx.emit(Transpose(tuple(ctx.axis(d, rank) for d in args["dims"])), [args["self"]])


@register_torch_converter("aten.transpose.int")
def _transpose(ctx, args):
    rank = ctx.rank_of(args["self"])
    perm = list(range(rank))
    a, b = ctx.axis(args["dim0"], rank), ctx.axis(args["dim1"], rank)
    perm[a], perm[b] = perm[b], perm[a]
    return ctx.emit(Transpose(tuple(perm)), [args["self"]])


@register_torch_converter("aten.t.default", "aten.numpy_T.default")
def _t(ctx, args):
    rank = ctx.rank_of(args["self"])
    return args["self"] if rank < 2 else ctx.emit(Transpose(tuple(reversed(range(rank)))), [args["self"]])


@register_torch_converter("aten.expand.default")
def _expand(ctx, args):
    return ctx.emit(Expand(tuple(ctx.dim(d) for d in args["size"])), [args["self"]])


@register_torch_converter("aten.expand_as.default")
def _expand_as(ctx, args):
    return ctx.emit(Expand(tuple(ctx.shape_of(args["other"]))), [args["self"]])


@register_torch_converter("aten.unsqueeze.default")
def _unsqueeze(ctx, args):
    shape = list(ctx.shape_of(args["self"]))
    a = ctx.axis(args["dim"], len(shape) + 1)
    return reshape(ctx, args["self"], shape[:a] + [1] + shape[a:])


@register_torch_converter("aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default")
def _squeeze(ctx, args):
    shape = list(ctx.shape_of(args["self"]))
    dims = args.get("dim", None)
    dims = range(len(shape)) if dims is None else [dims] if isinstance(dims, int) else dims
    drop = {ctx.axis(d, len(shape)) for d in dims if shape[ctx.axis(d, len(shape))] == 1}
    return reshape(ctx, args["self"], [d for i, d in enumerate(shape) if i not in drop])


# layout-only or value-preserving ops: the converted input is the output
for _name in ("aten.clone.default", "aten.contiguous.default", "aten.alias.default", "aten.detach.default",
              "aten.lift_fresh_copy.default", "aten.view_as.default"):
    register_torch_converter(_name)(lambda ctx, args: args["self"] if "other" not in args
                                    else reshape(ctx, args["self"], ctx.shape_of(args["other"])))


@register_torch_converter("aten.cat.default", "aten.concat.default")
def _cat(ctx, args):
    dt = ctx.out_dtype()
    tensors = [t for t in args["tensors"] if ctx.shape_of(t) != (0,)]  # torch skips legacy empty 1-D tensors
    rank = ctx.rank_of(tensors[0])
    return ctx.emit(Concat(ctx.axis(args.get("dim", 0), rank)), [ctx.value(t, dt) for t in tensors])


@register_torch_converter("aten.stack.default")
def _stack(ctx, args):
    tensors = args["tensors"]
    shape = list(ctx.shape_of(tensors[0]))
    a = ctx.axis(args.get("dim", 0), len(shape) + 1)
    parts = [reshape(ctx, t, shape[:a] + [1] + shape[a:], f"_u{i}") for i, t in enumerate(tensors)]
    return ctx.emit(Concat(a), parts)


def slice_value(ctx, x, axis, start, stop, step=1, suffix=""):
    """x[start:stop:step] along `axis`; None/INT64_MAX stop means to the end."""
    if isinstance(stop, int) and stop >= INT64_MAX:
        stop = None
    start = 0 if start is None else ctx.dim(start)
    stop = None if stop is None else ctx.dim(stop)
    dim = ctx.shape_of(x)[axis]
    if isinstance(dim, int) and isinstance(stop, int) and stop > dim:
        stop = None  # torch clamps out-of-range ends
    if start == 0 and stop is None and step == 1:
        return x
    return ctx.emit(Slice(axis, start, stop, int(step)), [x], name=ctx.node.name + suffix)


@register_torch_converter("aten.slice.Tensor")
def _slice(ctx, args):
    rank = ctx.rank_of(args["self"])
    return slice_value(ctx, args["self"], ctx.axis(args.get("dim", 0), rank), args.get("start"), args.get("end"),
                       args.get("step", 1))


@register_torch_converter("aten.narrow.default")
def _narrow(ctx, args):
    rank = ctx.rank_of(args["self"])
    start = ctx.dim(args["start"])
    return slice_value(ctx, args["self"], ctx.axis(args["dim"], rank), start, D.add(start, ctx.dim(args["length"])))


def select(ctx, x, axis, index, suffix=""):
    shape = list(ctx.shape_of(x))
    index = ctx.dim(index)
    stop = None if index == -1 else D.add(index, 1)
    part = ctx.emit(Slice(axis, index, stop, 1), [x], name=ctx.node.name + suffix + "_slice")
    return reshape(ctx, part, shape[:axis] + shape[axis + 1:], suffix)


@register_torch_converter("aten.select.int")
def _select(ctx, args):
    return select(ctx, args["self"], ctx.axis(args["dim"], ctx.rank_of(args["self"])), args["index"])


@register_torch_converter("aten.unbind.int")
def _unbind(ctx, args):
    x = args["self"]
    axis = ctx.axis(args.get("dim", 0), ctx.rank_of(x))
    n = ctx.shape_of(x)[axis]
    if not isinstance(n, int):
        raise ctx.error(f"unbind over symbolic dim {n} is not supported; supported: static dims")
    return [select(ctx, x, axis, i, f"_{i}") for i in range(n)]


def _split_sizes(ctx, sizes, x, axis):
    out, start = [], 0
    for i, size in enumerate(sizes):
        stop = D.add(start, ctx.dim(size))
        out.append(slice_value(ctx, x, axis, start, stop, 1, f"_{i}"))
        start = stop
    return out


@register_torch_converter("aten.split_with_sizes.default")
def _split_with_sizes(ctx, args):
    x = args["self"]
    return _split_sizes(ctx, args["split_sizes"], x, ctx.axis(args.get("dim", 0), ctx.rank_of(x)))


@register_torch_converter("aten.split.Tensor", "aten.chunk.default")
def _split(ctx, args):
    x = args["self"]
    axis = ctx.axis(args.get("dim", 0), ctx.rank_of(x))
    n = ctx.shape_of(x)[axis]
    if not isinstance(n, int):
        raise ctx.error(f"split of symbolic dim {n} is not supported; supported: static dims (use split_with_sizes)")
    size = args["split_size"] if "split_size" in args else -(-n // args["chunks"])
    sizes = [min(size, n - s) for s in range(0, n, size)]
    return _split_sizes(ctx, sizes, x, axis)


@register_torch_converter("aten.repeat_interleave.self_int")
def _repeat_interleave(ctx, args):
    x, r = args["self"], args["repeats"]
    shape = list(ctx.shape_of(x))
    if args.get("dim") is None:
        x, shape = reshape(ctx, x, [D.product(shape)], "_flat"), [D.product(shape)]
    a = ctx.axis(args["dim"] if args.get("dim") is not None else 0, len(shape))
    r = ctx.dim(r)
    u = reshape(ctx, x, shape[:a + 1] + [1] + shape[a + 1:], "_u")
    e = ctx.emit(Expand(tuple(shape[:a + 1] + [r] + shape[a + 1:])), [u], name=ctx.node.name + "_expand")
    return reshape(ctx, e, shape[:a] + [D.mul(shape[a], r)] + shape[a + 1:])


@register_torch_converter("aten.repeat.default")
def _repeat(ctx, args):
    x, reps = args["self"], [ctx.dim(r) for r in args["repeats"]]
    shape = [1] * (len(reps) - ctx.rank_of(x)) + list(ctx.shape_of(x))
    # tile = put a repeat axis before each dim, broadcast it, and merge: out[r*d + j] = x[j]
    inter = [v for d in shape for v in (1, d)]
    u = reshape(ctx, x, inter, "_u")
    e = ctx.emit(Expand(tuple(v for r, d in zip(reps, shape) for v in (r, d))), [u], name=ctx.node.name + "_expand")
    return reshape(ctx, e, [D.mul(r, d) for r, d in zip(reps, shape)])
