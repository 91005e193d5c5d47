"""TE definitions of the data-movement ops: Transpose, Concat, Slice, Gather, Expand, Rotary.

Reshape is not here: it is a view of a contiguous buffer (no kernel at all).
"""
from __future__ import annotations

from tvm import te, tirx

from .symbolic import is_one, static_int

from .te_elementwise import load


def transpose(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    perm = op.perm

    def f(*i):
        src = [None] * len(perm)
        for o, p in enumerate(perm):
            src[p] = i[o]
        return x[tuple(src)]

    return te.compute(out_shape, f, name=name)


def concat(op, ins, out_shape, out_dtype, name):
    ax = op.axis % len(out_shape)
    offsets, total = [], 0
    for t in ins:
        offsets.append(total)
        size = static_int(t.shape[ax])
        total = total + (t.shape[ax] if size is None else size)

    def f(*i):
        # select chain from the last piece back to the first
        def read(k):
            idx = list(i)
            idx[ax] = i[ax] - offsets[k]
            return ins[k][tuple(idx)]

        expr = read(len(ins) - 1)
        for k in range(len(ins) - 2, -1, -1):
            expr = tirx.Select(i[ax] < offsets[k + 1], read(k), expr)
        return expr

    return te.compute(out_shape, f, name=name)


def make_slice(start: int, step: int):
    def slice_(op, ins, out_shape, out_dtype, name):
        (x,) = ins
        ax = op.axis % len(out_shape)

        def f(*i):
            idx = list(i)
            idx[ax] = start + i[ax] * step
            return x[tuple(idx)]

        return te.compute(out_shape, f, name=name)

    return slice_


def gather(op, ins, out_shape, out_dtype, name):
    data, idx = ins
    ax = op.axis % len(data.shape)
    n = static_int(data.shape[ax]) or data.shape[ax]
    k = len(idx.shape)

    def f(*i):
        j = idx[tuple(i[ax:ax + k])] if k else idx()
        # te.compute loop indices are int32: match them, or a fused consumer (Concat) mixes int32/int64 compares
        j = j.astype("int32" if n < 2 ** 31 else "int64")
        j = tirx.Select(j < 0, j + n, j)  # numpy take: negative indices count from the end
        src = list(i[:ax]) + [j] + list(i[ax + k:])
        return data[tuple(src)]

    return te.compute(out_shape, f, name=name)


def expand(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    return te.compute(out_shape, lambda *i: load(x, i, out_shape).astype(out_dtype), name=name)


def rotary(op, ins, out_shape, out_dtype, name):
    """x (B, H, S, D) rotated by cos/sin (B|1, S, rotary_dim/2); channels past rotary_dim pass through."""
    x, cos, sin = ins
    rd, half = op.rotary_dim, op.rotary_dim // 2
    f32 = "float32"

    def cs(t, b, s, j):
        bb = 0 if is_one(t.shape[0]) else b
        return t[bb, s, j].astype(f32)

    def f(b, h, s, d):
        xd = x[b, h, s, d].astype(f32)
        if op.style == "rotate_half":
            # indices as floormods, not selects: over a vector of d they stay contiguous loads (a select
            # between x[d + half] and x[d - half] is a gather), and past rotary_dim they stay in bounds
            j = tirx.floormod(d, half)
            sign = tirx.Select(d < half, tirx.const(-1.0, f32), tirx.const(1.0, f32))
            partner = sign * x[b, h, s, tirx.floormod(d + half, rd)].astype(f32)
        else:  # interleaved: pairs (2j, 2j+1)
            j = tirx.floordiv(d, 2)
            even = tirx.floormod(d, 2) == 0
            partner = tirx.Select(even, -x[b, h, s, tirx.min(d + 1, rd - 1)].astype(f32),
                                  x[b, h, s, tirx.max(d - 1, 0)].astype(f32))
        jj = tirx.min(j, half - 1)
        rot = xd * cs(cos, b, s, jj) + partner * cs(sin, b, s, jj)
        return tirx.Select(d < rd, rot, xd).astype(out_dtype)

    return te.compute(out_shape, f, name=name)
