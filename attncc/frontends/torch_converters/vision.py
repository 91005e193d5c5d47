"""Ops the hybrid conv/attention vision families (timm: MaxViT, XCiT, EfficientFormer v2, ...) reach that other
families do not: vector norms, bilinear/nearest resizing, as_strided windows, flip.

Resizing and as_strided are static-shape index maps, so they become existing IR ops with constant operands:
bilinear resizing is separable and linear (y = A_h @ x @ A_w^T with (out, in) interpolation matrices built by
torch's own op on a basis, so every align_corners / scale-factor rule is torch's), nearest resizing is a Gather
per axis, as_strided and flip a Gather with constant indices.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ...ir.ops import Binary, Gather, MatMul, Reduce, Reshape, Unary
from . import register_torch_converter


@register_torch_converter("aten.linalg_vector_norm.default")
def _vector_norm(ctx, args):
    """||x||_ord over `dim` for ord 2, 1 and inf (XCiT's cross-covariance attention normalizes q and k)."""
    x = args["self"]
    order = float(args.get("ord", 2))
    rank = ctx.rank_of(x)
    dims = args.get("dim")
    dims = list(range(rank)) if dims is None or len(dims) == 0 else [dims] if isinstance(dims, int) else list(dims)
    axes = tuple(ctx.axis(d, rank) for d in dims)
    keep = bool(args.get("keepdim", False))
    name = ctx.node.name
    if order == 2:
        sq = ctx.emit(Binary("mul"), [x, x], name=name + "_sq")
        return ctx.emit(Unary("sqrt"), [ctx.emit(Reduce("sum", axes, keep), [sq], name=name + "_sum")])
    if order == 1:
        return ctx.emit(Reduce("sum", axes, keep), [ctx.emit(Unary("abs"), [x], name=name + "_abs")])
    if math.isinf(order) and order > 0:
        return ctx.emit(Reduce("max", axes, keep), [ctx.emit(Unary("abs"), [x], name=name + "_abs")])
    raise ctx.error(f"vector norm of order {order}; supported: 1, 2, inf")


def _static_shape(ctx, x, what: str) -> tuple[int, ...]:
    shape = tuple(ctx.shape_of(x))
    if not all(isinstance(d, int) for d in shape):
        raise ctx.error(f"{what} of a tensor with symbolic dims {list(shape)}; supported: static shapes")
    return shape


def _interpolation_matrix(ctx, args, in_hw: tuple[int, int], axis: int) -> np.ndarray:
    """(out, in) matrix of the resize along spatial `axis` (0: height, 1: width): the node's own aten op applied
    to a basis that is constant along the other axis."""
    n = in_hw[axis]
    basis = torch.eye(n, dtype=torch.float64)
    shape = (n, 1, n, 1) if axis == 0 else (n, 1, 1, n)
    basis = basis.reshape(shape).expand(n, 1, *[in_hw[i] if i != axis else n for i in (0, 1)]).contiguous()
    op = ctx.node.target
    call = {k: v for k, v in args.items() if k != "input"}
    out = op(basis, **call)                      # (n, 1, H_out, W_out)
    line = out[:, 0, :, 0] if axis == 0 else out[:, 0, 0, :]
    return line.T.contiguous().numpy()           # (out, in)


@register_torch_converter("aten.upsample_bilinear2d.vec", "aten.upsample_bilinear2d.default")
def _upsample_bilinear(ctx, args):
    x = args["input"]
    shape = _static_shape(ctx, x, "bilinear resize")
    out_shape = tuple(ctx.node.meta["val"].shape)
    dt = ctx.dtype_of(x)
    np_dt = np.float32 if dt == "float32" else np.float64
    a_h = _interpolation_matrix(ctx, args, shape[2:], 0)
    a_w = _interpolation_matrix(ctx, args, shape[2:], 1)
    name = ctx.node.name
    wt = ctx.constant(a_w.T.astype(np_dt), name=name + "_wmap")         # (W_in, W_out)
    hm = ctx.constant(a_h.astype(np_dt), name=name + "_hmap")           # (H_out, H_in)
    if dt != "float32":
        wt, hm = ctx.value(wt, dt), ctx.value(hm, dt)
    y = ctx.emit(MatMul(), [x, wt], name=name + "_w")                  # (N, C, H_in, W_out)
    y = ctx.emit(MatMul(), [hm, y], name=name)                          # (N, C, H_out, W_out)
    assert tuple(y.shape) == out_shape, (y.shape, out_shape)
    return y


@register_torch_converter("aten.upsample_nearest2d.vec", "aten.upsample_nearest2d.default")
def _upsample_nearest(ctx, args):
    x = args["input"]
    shape = _static_shape(ctx, x, "nearest resize")
    name = ctx.node.name
    y = x
    for axis in (0, 1):
        a = _interpolation_matrix(ctx, args, shape[2:], axis)          # one 1 per row: the source index
        idx = ctx.constant(a.argmax(axis=1).astype(np.int64), name=f"{name}_idx{axis}")
        y = ctx.emit(Gather(2 + axis), [y, idx], name=name if axis == 1 else name + "_rows")
    return y


def _flat_gather(ctx, x, index: np.ndarray, name: str):
    """x.flatten()[index] reshaped to index.shape."""
    numel = int(np.prod(ctx.shape_of(x)))
    flat = ctx.emit(Reshape((numel,)), [x], name=name + "_flat")
    return ctx.emit(Gather(0), [flat, ctx.constant(index.astype(np.int64), name=name + "_idx")], name=name)


@register_torch_converter("aten.as_strided.default")
def _as_strided(ctx, args):
    """as_strided over a contiguous input (what exported graphs give it): a Gather of the flat offsets."""
    x = args["self"]
    shape = _static_shape(ctx, x, "as_strided")
    src = ctx.node.args[0].meta.get("val") if hasattr(ctx.node.args[0], "meta") else None
    if src is not None and not src.is_contiguous():
        raise ctx.error(f"as_strided of a non-contiguous tensor (strides {tuple(src.stride())}); supported: a "
                        "contiguous input")
    size, stride = [int(s) for s in args["size"]], [int(s) for s in args["stride"]]
    offset = int(args.get("storage_offset") or 0)
    index = np.full(size, offset, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(size, stride)):
        index += (np.arange(n) * s).reshape([-1 if i == axis else 1 for i in range(len(size))])
    if index.size and (index.min() < 0 or index.max() >= int(np.prod(shape))):
        raise ctx.error(f"as_strided(size={size}, stride={stride}, offset={offset}) reads outside the "
                        f"{list(shape)} input")
    return _flat_gather(ctx, x, index, ctx.node.name)


@register_torch_converter("aten.flip.default")
def _flip(ctx, args):
    x = args["self"]
    rank = ctx.rank_of(x)
    shape = _static_shape(ctx, x, "flip")
    y = x
    for d in args["dims"]:
        a = ctx.axis(d, rank)
        idx = ctx.constant(np.arange(shape[a] - 1, -1, -1, dtype=np.int64), name=f"{ctx.node.name}_rev{a}")
        y = ctx.emit(Gather(a), [y, idx], name=f"{ctx.node.name}_{a}")
    return y

