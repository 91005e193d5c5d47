"""Conv, MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool (domain ai.onnx) -> Convolution / Pool / Reduce.

1-D and 2-D only. auto_pad NOTSET / VALID / SAME_UPPER / SAME_LOWER become explicit per-side padding
(SAME needs static spatial sizes unless the stride is 1). Unsupported forms (3-D, MaxPool's Indices
output, storage_order) fail naming the node and what is supported.
"""
from __future__ import annotations

from ...ir.ops import Convolution, Pool, Reduce
from .context import ImportContext
from .registry import converter

SUPPORTED = "supported: 1-D (N, C, L) and 2-D (N, C, H, W) inputs"


def _spatial(ctx: ImportContext, node, rank_from: int) -> tuple:
    t = ctx.input_type(node, rank_from)
    rank = t.rank - 2
    ctx.check(rank in (1, 2), f"{rank}-D {node.op_type} (input {t}) is not supported; {SUPPORTED}")
    return tuple(ctx.input_type(node, 0).shape[2:])


def _ints(ctx: ImportContext, node, name: str, rank: int, default: int) -> tuple[int, ...]:
    v = ctx.attr(node, name)
    if v is None:
        return (default,) * rank
    v = tuple(int(x) for x in v)
    ctx.check(len(v) == rank, f"attribute {name}={list(v)} must hold {rank} value(s) for a {rank}-D input")
    return v


def _padding(ctx: ImportContext, node, sizes: tuple, kernel, stride, dilation) -> tuple[tuple[int, int], ...]:
    """Per-side padding from `pads` or `auto_pad` (ONNX's SAME rule: output = ceil(size / stride))."""
    rank = len(kernel)
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    if auto == "NOTSET":
        pads = ctx.attr(node, "pads")
        if pads is None:
            return ((0, 0),) * rank
        pads = [int(p) for p in pads]
        ctx.check(len(pads) == 2 * rank, f"pads={pads} must hold {2 * rank} values (begins, then ends)")
        return tuple((pads[i], pads[i + rank]) for i in range(rank))
    if auto == "VALID":
        return ((0, 0),) * rank
    ctx.check(auto in ("SAME_UPPER", "SAME_LOWER"),
              f"auto_pad={auto!r} is not supported; supported: NOTSET, VALID, SAME_UPPER, SAME_LOWER")
    out = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation):
        span = d * (k - 1) + 1
        if s == 1:
            total = span - 1
        else:
            ctx.check(isinstance(size, int), f"auto_pad={auto} with stride {s} over the symbolic size {size!r} is not "
                      "supported; supported: static spatial sizes, or stride 1")
            total = max(0, (-(-size // s) - 1) * s + span - size)
        small = total // 2
        out.append((small, total - small) if auto == "SAME_UPPER" else (total - small, small))
    return tuple(out)


@converter("", "Conv", since=1)
def conv(ctx: ImportContext, node):
    sizes = _spatial(ctx, node, 0)
    rank = len(sizes)
    w_t = ctx.input_type(node, 1)
    kernel = tuple(w_t.shape[2:])
    declared = ctx.attr(node, "kernel_shape")
    ctx.check(declared is None or tuple(declared) == kernel,
              f"kernel_shape={list(declared or [])} differs from the weight's kernel {list(kernel)}")
    stride = _ints(ctx, node, "strides", rank, 1)
    dilation = _ints(ctx, node, "dilations", rank, 1)
    padding = _padding(ctx, node, sizes, kernel, stride, dilation)
    op = Convolution(stride, padding, dilation, int(ctx.attr(node, "group", 1)))
    ins = [ctx.input(node, 0), ctx.input(node, 1)]
    if ctx.has_input(node, 2):
        ins.append(ctx.input(node, 2))
    return [ctx.add1(op, ins)]


def _pool(kind: str):
    def convert(ctx: ImportContext, node):
        sizes = _spatial(ctx, node, 0)
        rank = len(sizes)
        kernel = _ints(ctx, node, "kernel_shape", rank, 0)
        ctx.check(all(k >= 1 for k in kernel), "attribute kernel_shape is required")
        stride = _ints(ctx, node, "strides", rank, 1)
        dilation = _ints(ctx, node, "dilations", rank, 1)
        padding = _padding(ctx, node, sizes, kernel, stride, dilation)
        ceil = bool(ctx.attr(node, "ceil_mode", 0))
        if kind == "max":
            ctx.check(int(ctx.attr(node, "storage_order", 0)) == 0, "storage_order=1 is not supported (only 0)")
            ctx.check(len(node.output) < 2 or node.output[1] == "",
                      "the Indices output of MaxPool is not supported; supported: the pooled values (output 0)")
            op = Pool("max", kernel, stride, padding, dilation, True, ceil)
        else:
            ctx.check(all(d == 1 for d in dilation), f"AveragePool dilations={list(dilation)} are not supported "
                      "(only 1)")
            op = Pool("avg", kernel, stride, padding, dilation, bool(ctx.attr(node, "count_include_pad", 0)), ceil)
        return [ctx.add1(op, [ctx.input(node, 0)])]
    return convert


converter("", "MaxPool", since=1)(_pool("max"))
converter("", "AveragePool", since=1)(_pool("avg"))


@converter("", "GlobalAveragePool", since=1)
def global_average_pool(ctx: ImportContext, node):
    rank = len(_spatial(ctx, node, 0))
    return [ctx.add1(Pool.adaptive_avg((1,) * rank), [ctx.input(node, 0)])]


@converter("", "GlobalMaxPool", since=1)
def global_max_pool(ctx: ImportContext, node):
    rank = len(_spatial(ctx, node, 0))
    return [ctx.add1(Reduce("max", tuple(range(2, 2 + rank)), True), [ctx.input(node, 0)])]
