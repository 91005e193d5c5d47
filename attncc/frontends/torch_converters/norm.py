"""Softmax, normalizations and reductions."""
from __future__ import annotations

import torch

from ...ir import dims as D
from ...ir.ops import BatchNorm, Binary, Cast, LayerNorm, Reduce, Reshape, RMSNorm, Softmax
from . import register_torch_converter
from .context import ir_dtype


def _last_axis_form(ctx, axis: int, rank: int) -> int:
    """-1 for the last axis (the form attention recognition anchors on), else the non-negative axis."""
    a = ctx.axis(axis, rank)
    return -1 if a == rank - 1 else a


@register_torch_converter("aten._softmax.default", "aten.softmax.int")
def _softmax(ctx, args):
    x = args["self"]
    dt = ctx.out_dtype()
    if args.get("dtype") is not None or args.get("half_to_float"):
        x = ctx.value(x, dt)  # softmax computed in the requested (wider) dtype
    return ctx.emit(Softmax(_last_axis_form(ctx, args["dim"], ctx.rank_of(x))), [x])


def _check_last_axis(ctx, x, normalized_shape):
    shape = ctx.shape_of(x)
    if len(normalized_shape) != 1 or ctx.dim(normalized_shape[0]) != shape[-1]:
        raise ctx.error(f"normalization over {list(normalized_shape)} of a {list(shape)} tensor; supported: "
                        "the last axis only")


@register_torch_converter("aten.layer_norm.default", "aten.native_layer_norm.default")
def _layer_norm(ctx, args):
    x, w, b = args["input"], args.get("weight"), args.get("bias")
    _check_last_axis(ctx, x, args["normalized_shape"])
    op = LayerNorm(eps=float(args.get("eps", 1e-5)), has_weight=w is not None, has_bias=b is not None)
    y = ctx.emit(op, [x] + [t for t in (w, b) if t is not None])
    if str(ctx.node.target) == "aten.native_layer_norm.default":
        return (y, None, None)  # mean and rstd outputs: only used in training graphs
    return y


@register_torch_converter("aten.group_norm.default", "aten.native_group_norm.default")
def _group_norm(ctx, args):
    """GroupNorm (wav2vec2's feature extractor, conv nets) as a LayerNorm over each group's flattened
    (C/groups, *spatial) cells: reshape (N, G, rest), normalize the last axis, reshape back, then the
    per-channel affine."""
    x, w, b = args["input"], args.get("weight"), args.get("bias")
    groups = int(args["num_groups"] if "num_groups" in args else args["group"])
    shape = tuple(ctx.shape_of(x))
    channels = shape[1]
    if not isinstance(channels, int) or channels % groups:
        raise ctx.error(f"group norm of {groups} groups over {channels!r} channels; supported: a static channel "
                        "count divisible by the groups")
    name = ctx.node.name
    grouped = ctx.emit(Reshape((shape[0], groups, D.product((channels // groups,) + shape[2:]))), [x],
                       name=name + "_grouped")
    y = ctx.emit(LayerNorm(eps=float(args.get("eps", 1e-5)), has_weight=False, has_bias=False), [grouped],
                 name=name + "_norm")
    y = ctx.emit(Reshape(shape), [y], name=name + "_ungrouped")
    per_channel = (channels,) + (1,) * (len(shape) - 2)   # broadcasts the (C,) affine over the spatial dims
    if w is not None:
        y = ctx.emit(Binary("mul"), [y, ctx.emit(Reshape(per_channel), [w], name=name + "_w")], name=name + "_scaled")
    if b is not None:
        y = ctx.emit(Binary("add"), [y, ctx.emit(Reshape(per_channel), [b], name=name + "_b")], name=name + "_shifted")
    if str(ctx.node.target) == "aten.native_group_norm.default":
        return (y, None, None)  # mean and rstd outputs: only used in training graphs
    return y


@register_torch_converter("aten._native_batch_norm_legit_no_training.default",
                          "aten.batch_norm.default", "aten._native_batch_norm_legit.default",
                          "aten.native_batch_norm.default")
def _batch_norm(ctx, args):
    """Inference batch norm with running statistics (BatchNorm1d/2d/3d in eval()). Training-mode batch norm
    (statistics of the batch itself, running stats updated) is refused: compile the model in eval()."""
    target = str(ctx.node.target)
    training = args.get("training", False)
    if target != "aten._native_batch_norm_legit_no_training.default" and training:
        raise ctx.error("batch norm in training mode (batch statistics); supported: inference with running "
                        "statistics — call model.eval() before compiling")
    x, w, b = args["input"], args.get("weight"), args.get("bias")
    mean, var = args.get("running_mean"), args.get("running_var")
    if mean is None or var is None:
        raise ctx.error("batch norm without running statistics (track_running_stats=False); supported: "
                        "BatchNorm with running_mean/running_var")
    op = BatchNorm(eps=float(args.get("eps", 1e-5)), has_weight=w is not None, has_bias=b is not None)
    y = ctx.emit(op, [x, mean, var] + [t for t in (w, b) if t is not None])
    if target == "aten.batch_norm.default":
        return y
    return (y, None, None)  # saved mean / rstd outputs: only used in training graphs


@register_torch_converter("aten.rms_norm.default")
def _rms_norm(ctx, args):
    x, w = args["input"], args.get("weight")
    _check_last_axis(ctx, x, args["normalized_shape"])
    eps = args.get("eps")
    if eps is None:  # torch's default: the dtype's machine epsilon
        eps = torch.finfo(ctx.node.meta["val"].dtype).eps
    return ctx.emit(RMSNorm(eps=float(eps), has_weight=w is not None), [x] + ([w] if w is not None else []))


def _reduce(fn: str):
    def convert(ctx, args):
        x = args["self"]
        rank = ctx.rank_of(x)
        dims = args.get("dim")
        if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
            dims = list(range(rank))
        dims = [dims] if isinstance(dims, int) else list(dims)
        if args.get("dtype") is not None:
            x = ctx.value(x, ir_dtype(args["dtype"], ctx.where()))
        y = ctx.emit(Reduce(fn, tuple(ctx.axis(d, rank) for d in dims), bool(args.get("keepdim", False))), [x])
        if y.dtype != ctx.out_dtype(0):
            y = ctx.emit(Cast(ctx.out_dtype(0)), [y], name=ctx.node.name + "_cast")
        if str(ctx.node.target) in ("aten.max.dim", "aten.min.dim"):
            return (y, None)  # indices are not representable; using them fails clearly downstream
        return y
    return convert


for _fn, _ops in {"mean": ("aten.mean.dim", "aten.mean.default"),
                  "sum": ("aten.sum.dim_IntList", "aten.sum.default"),
                  "max": ("aten.amax.default", "aten.max.dim"),
                  "min": ("aten.amin.default", "aten.min.dim"),
                  "prod": ("aten.prod.dim_int",)}.items():
    register_torch_converter(*_ops)(_reduce(_fn))
