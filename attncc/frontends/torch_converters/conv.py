"""Convolution and pooling: aten.convolution / conv1d / conv2d -> Convolution; max / avg / adaptive avg pools
-> Pool. 1-D and 2-D only; transposed and 3-D convolutions are rejected naming the node and what is supported.

torch.export with attncc's decompositions emits aten.convolution.default, max_pool2d_with_indices, avg_pool2d
(1-D pools as unsqueeze + 2-D) and mean.dim for global average pooling; the undecomposed names are
registered too so an ExportedProgram in either form imports.
"""
from __future__ import annotations

from ...ir.ops import Convolution, Pool, Reshape
from . import register_torch_converter


def _ints(ctx, v, rank: int, what: str) -> tuple[int, ...]:
    v = [v] if isinstance(v, int) else list(v)
    if len(v) == 1:
        v = v * rank
    if len(v) != rank or not all(isinstance(x, int) for x in v):
        raise ctx.error(f"{what} {v!r} must give {rank} static int(s) for a {rank}-D op")
    return tuple(int(x) for x in v)


def _batched(ctx, x, spatial: int):
    """(x with a batch dim, whether one was added): torch accepts unbatched (C, *spatial) inputs."""
    shape = ctx.shape_of(x)
    if len(shape) == spatial + 1:
        return ctx.emit(Reshape((1,) + tuple(shape)), [x], name=ctx.node.name + "_batched"), True
    return x, False


def _unbatched(ctx, y, added: bool):
    return ctx.emit(Reshape(tuple(y.shape[1:])), [y], name=ctx.node.name + "_unbatched") if added else y


def _conv(ctx, x, w, b, stride, padding, dilation, groups):
    w_shape = ctx.shape_of(w)
    rank = len(w_shape) - 2
    if rank not in (1, 2):
        raise ctx.error(f"{rank}-D convolution (weight {list(w_shape)}) is not supported; supported: 1-D (N, C, L) "
                        "and 2-D (N, C, H, W) convolutions")
    stride, dilation = _ints(ctx, stride, rank, "stride"), _ints(ctx, dilation, rank, "dilation")
    if isinstance(padding, str):
        if padding == "valid":
            pairs = ((0, 0),) * rank
        elif padding == "same":  # torch puts the odd cell on the right
            tot = [d * (k - 1) for d, k in zip(dilation, w_shape[2:])]
            pairs = tuple((t // 2, t - t // 2) for t in tot)
        else:
            raise ctx.error(f"padding={padding!r}; supported: ints, 'same', 'valid'")
    else:
        pairs = tuple((p, p) for p in _ints(ctx, padding, rank, "padding"))
    x, added = _batched(ctx, x, rank)
    op = Convolution(stride, pairs, dilation, int(groups))
    y = ctx.emit(op, [x, w] + ([b] if b is not None else []), name=ctx.node.name + ("_conv" if added else ""))
    return _unbatched(ctx, y, added)


@register_torch_converter("aten.convolution.default")
def _convolution(ctx, args):
    if args.get("transposed"):
        raise ctx.error("transposed convolution (ConvTranspose) is not supported; supported: 1-D and 2-D forward "
                        "convolutions with stride, padding, dilation and groups")
    if any(int(p) for p in args.get("output_padding") or ()):
        raise ctx.error(f"output_padding {list(args['output_padding'])} is only meaningful for transposed convolution")
    return _conv(ctx, args["input"], args["weight"], args.get("bias"), args["stride"], args["padding"],
                 args["dilation"], args["groups"])


@register_torch_converter("aten.conv1d.default", "aten.conv2d.default", "aten.conv1d.padding",
                          "aten.conv2d.padding")
def _convnd(ctx, args):
    return _conv(ctx, args["input"], args["weight"], args.get("bias"), args.get("stride", 1),
                 args.get("padding", 0), args.get("dilation", 1), args.get("groups", 1))


def _pool(kind: str, rank: int):
    def convert(ctx, args):
        x = args["self"]
        kernel = _ints(ctx, args["kernel_size"], rank, "kernel_size")
        stride = args.get("stride")
        stride = kernel if stride in (None, [], ()) else _ints(ctx, stride, rank, "stride")
        padding = _ints(ctx, args.get("padding", 0), rank, "padding")
        ceil = bool(args.get("ceil_mode", False))
        if kind == "max":
            op = Pool.make("max", kernel, stride, padding, _ints(ctx, args.get("dilation", 1), rank, "dilation"),
                           ceil_mode=ceil)
        else:
            if args.get("divisor_override") is not None:
                raise ctx.error(f"avg_pool divisor_override={args['divisor_override']} is not supported; "
                                "supported: the default divisor (count_include_pad True/False)")
            op = Pool.make("avg", kernel, stride, padding, 1, bool(args.get("count_include_pad", True)), ceil)
        x, added = _batched(ctx, x, rank)
        y = _unbatched(ctx, ctx.emit(op, [x], name=ctx.node.name + ("_pool" if added else "")), added)
        if str(ctx.node.target).endswith("with_indices.default"):
            return (y, None)  # indices are not representable; using them fails clearly downstream
        return y
    return convert


for _kind, _rank, _names in (("max", 2, ("aten.max_pool2d.default", "aten.max_pool2d_with_indices.default")),
                             ("max", 1, ("aten.max_pool1d.default", "aten.max_pool1d_with_indices.default")),
                             ("avg", 2, ("aten.avg_pool2d.default",)), ("avg", 1, ("aten.avg_pool1d.default",))):
    register_torch_converter(*_names)(_pool(_kind, _rank))


def _adaptive(rank: int):
    def convert(ctx, args):
        x = args["self"]
        out = _ints(ctx, args["output_size"], rank, "output_size")
        x, added = _batched(ctx, x, rank)
        spatial = ctx.shape_of(x)[2:]
        for s, o in zip(spatial, out):
            if o != 1 and not (isinstance(s, int) and s % o == 0):
                raise ctx.error(f"adaptive average pooling of spatial size {list(spatial)} to {list(out)} is not "
                                "supported; supported: output sizes that divide static input sizes, or 1 (global)")
        y = ctx.emit(Pool.adaptive_avg(out), [x], name=ctx.node.name + ("_pool" if added else ""))
        return _unbatched(ctx, y, added)
    return convert


register_torch_converter("aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default")(_adaptive(2))
register_torch_converter("aten.adaptive_avg_pool1d.default")(_adaptive(1))
