"""TE definitions of Convolution and Pool (target-neutral; schedules come from the target plugin).

Two convolution forms:
- direct: acc[n, co, *o] = sum over (ci in co's group, kernel offsets) of pad(x) * w, fp32 accumulation; any
  groups (depthwise included). The padded input is its own block so a schedule can materialize it and read
  contiguous rows in the inner loop.
- im2col: cols[g, (ci, *k), n*P + p] = pad(x)[n, g*Cg + ci, o(p)*s + k*d] (one kernel), then the target's
  matmul strategy computes weight (G, C_out/G, K) @ cols (G, K, N*P) per group.
Pool: a window reduction block "acc" (max, or sum) and an elementwise output block (avg: / window count,
torch's count_include_pad / ceil_mode divisor), so a row schedule can compute the windows per output row.
"""
from __future__ import annotations

from tvm import te, tirx

from .symbolic import static_int


def _f32(v):
    return v.astype("float32") if str(v.dtype) != "float32" else v


def pad_input(x: te.Tensor, padding, value: float, name: str = "pad") -> te.Tensor:
    """x (N, C, *spatial) padded per side with `value` (a no-op view when there is no padding)."""
    if all(p == (0, 0) or tuple(p) == (0, 0) for p in padding):
        return x
    spatial = x.shape[2:]
    shape = tuple(x.shape[:2]) + tuple(s + p[0] + p[1] for s, p in zip(spatial, padding))

    def f(n, c, *i):
        inside = tirx.const(True, "bool")
        src = []
        for ii, s, p in zip(i, spatial, padding):
            j = ii - p[0]
            inside = tirx.all(inside, j >= 0, j < s)
            src.append(j)
        return tirx.if_then_else(inside, x[(n, c) + tuple(src)], tirx.const(value, x.dtype))

    return te.compute(shape, f, name=name)


def conv_direct(x: te.Tensor, w: te.Tensor, op, out_shape, name: str = "acc") -> te.Tensor:
    """fp32 accumulator (N, C_out, *out) of the grouped cross-correlation."""
    xp = pad_input(x, op.padding, 0.0)
    c_out, cg = static_int(w.shape[0]), static_int(w.shape[1])
    kernel = [static_int(k) for k in w.shape[2:]]
    per_group = c_out // op.groups
    rc = te.reduce_axis((0, cg), "rc")
    rk = [te.reduce_axis((0, k), f"rk{i}") for i, k in enumerate(kernel)]

    def f(n, co, *o):
        ci = rc if op.groups == 1 else co // per_group * cg + rc
        at = tuple(oi * s + r * d for oi, s, r, d in zip(o, op.stride, rk, op.dilation))
        return te.sum(_f32(xp[(n, ci) + at]) * _f32(w[(co, rc) + tuple(rk)]), axis=[rc] + rk)

    return te.compute(out_shape, f, name=name)


def im2col(x: te.Tensor, op, kernel, out_spatial, columns: int, name: str = "cols") -> te.Tensor:
    """cols (groups, C_in/groups * prod(kernel), columns): row (ci, *k) like the weight's (C_in/groups, *kernel),
    column n * P + p (P = prod(out)); columns past N * P are zeros (a matmul-friendly width)."""
    xp = pad_input(x, op.padding, 0.0)
    n_batch = static_int(x.shape[0])
    cg = static_int(x.shape[1]) // op.groups
    ksize, psize = 1, 1
    for k in kernel:
        ksize *= k
    for o in out_spatial:
        psize *= o

    def f(g, r, col):
        n, p = col // psize, col % psize
        ci, rest = g * cg + r // ksize, r % ksize
        ks, ps = [], []
        for k in reversed(kernel):
            ks.append(rest % k)
            rest = rest // k
        for o in reversed(out_spatial):
            ps.append(p % o)
            p = p // o
        ks.reverse()
        ps.reverse()
        at = tuple(pi * s + ki * d for pi, s, ki, d in zip(ps, op.stride, ks, op.dilation))
        if columns == n_batch * psize:
            return xp[(n, ci) + at]
        return tirx.if_then_else(col < n_batch * psize, xp[(n, ci) + at], tirx.const(0.0, x.dtype))

    return te.compute((op.groups, cg * ksize, columns), f, name=name)


def pool(op, ins, out_shape, out_dtype: str, name: str) -> te.Tensor:
    """Max / average pooling (adaptive avg with even windows); output block `name`, window block `name`_acc."""
    (x,) = ins
    spatial = list(x.shape[2:])
    rank = len(spatial)
    if op.adaptive:
        if all(o == 1 for o in op.output_size):  # global: the window is the whole (possibly symbolic) extent
            kernel, stride = spatial, [1] * rank
        else:
            kernel = [static_int(s) // o for s, o in zip(spatial, op.output_size)]
            stride = kernel
        padding, dilation = [(0, 0)] * rank, [1] * rank
    else:
        kernel, stride, padding, dilation = list(op.kernel), list(op.stride), list(op.padding), list(op.dilation)
    rk = [te.reduce_axis((0, k), f"rk{i}") for i, k in enumerate(kernel)]
    is_max = op.kind == "max"

    def window(n, c, *o):
        inside = tirx.const(True, "bool")
        src = []
        for oi, s, r, d, p, size in zip(o, stride, rk, dilation, padding, spatial):
            j = oi * s + r * d - p[0]
            inside = tirx.all(inside, j >= 0, j < size)
            src.append(tirx.max(tirx.min(j, size - 1), 0))  # clamped: the load stays in bounds
        v = _f32(x[(n, c) + tuple(src)])
        if is_max:
            return te.max(tirx.if_then_else(inside, v, tirx.min_value("float32")), axis=rk)
        return te.sum(tirx.if_then_else(inside, v, tirx.const(0.0, "float32")), axis=rk)

    acc = te.compute(out_shape, window, name=name + "_acc")
    if is_max:
        return te.compute(out_shape, lambda *i: acc[i].astype(out_dtype), name=name)

    def average(n, c, *o):
        count = tirx.const(1, "int32")
        for oi, s, k, p, size in zip(o, stride, kernel, padding, spatial):
            start = oi * s - p[0]
            if op.count_include_pad:   # padding counts, cells past the right padding (ceil_mode) do not
                cells = tirx.min(start + k, size + p[1]) - start
            else:
                cells = tirx.min(start + k, size) - tirx.max(start, 0)
            count = count * cells
        return (acc[(n, c) + o] / count.astype("float32")).astype(out_dtype)

    return te.compute(out_shape, average, name=name)
