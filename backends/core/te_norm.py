"""TE definitions of the row reductions: Softmax, LayerNorm, RMSNorm, Reduce (math in fp32 for narrow floats),
and the per-channel BatchNorm (no reduction: running statistics are inputs)."""
from __future__ import annotations

import math

from tvm import te, tirx

from .symbolic import static_int

from .te_elementwise import compute_dtype, vexp


def _up(t: te.Tensor, *i):
    v = t[i]
    return v.astype("float32") if compute_dtype(str(t.dtype)) != str(t.dtype) else v


def _extent(d):
    """A dim as a Python int when static (cleaner loops), else its TIR expression."""
    v = static_int(d)
    return d if v is None else v


def _inverse(n):
    """1/n in fp32 for a static or symbolic element count."""
    if isinstance(n, int):
        return tirx.const(1.0 / n, "float32")
    return tirx.const(1.0, "float32") / n.astype("float32")


def softmax(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    ax = op.axis % len(out_shape)
    n = _extent(out_shape[ax])
    cd = compute_dtype(str(x.dtype))
    red_shape = [d for i, d in enumerate(out_shape) if i != ax]

    def at(rest, j):
        idx = list(rest[:ax]) + [j] + list(rest[ax:])
        return _up(x, *idx)

    k = te.reduce_axis((0, n), "k")
    mx = te.compute(red_shape, lambda *r: te.max(at(r, k), axis=k), name=name + "_max")
    # rows that are entirely -inf subtract 0 instead of -inf so they give 0, not NaN (reference semantics)
    safe = te.compute(red_shape, lambda *r: tirx.Select(tirx.isfinite(mx[r]), mx[r], tirx.const(0, cd)),
                      name=name + "_safe")

    def ex(r, j):
        return vexp(at(r, j) - safe[r], cd)

    k2 = te.reduce_axis((0, n), "k2")
    sm = te.compute(red_shape, lambda *r: te.sum(ex(r, k2), axis=k2), name=name + "_sum")

    def f(*i):
        r = tuple(i[:ax]) + tuple(i[ax + 1:])
        s = sm[r]
        return tirx.Select(s > tirx.const(0, cd), ex(r, i[ax]) / s, tirx.const(0, cd)).astype(out_dtype)

    return te.compute(out_shape, f, name=name)


def layer_norm(op, ins, out_shape, out_dtype, name):
    x = ins[0]
    n = _extent(out_shape[-1])
    rows = out_shape[:-1]
    inv_n = _inverse(n)
    k = te.reduce_axis((0, n), "k")
    total = te.compute(rows, lambda *r: te.sum(_up(x, *r, k), axis=k), name=name + "_sum")
    k2 = te.reduce_axis((0, n), "k2")

    def centered(r, j):
        return _up(x, *r, j) - total[r] * inv_n

    sq = te.compute(rows, lambda *r: te.sum(centered(r, k2) * centered(r, k2), axis=k2), name=name + "_sqsum")
    w = ins[1] if op.has_weight else None
    b = ins[1 + op.has_weight] if op.has_bias else None

    def f(*i):
        r = i[:-1]
        y = centered(r, i[-1]) * te.rsqrt(sq[r] * inv_n + tirx.const(op.eps, "float32"))
        if w is not None:
            y = y * _up(w, i[-1])
        if b is not None:
            y = y + _up(b, i[-1])
        return y.astype(out_dtype)

    return te.compute(out_shape, f, name=name)


def rms_norm(op, ins, out_shape, out_dtype, name):
    x = ins[0]
    n = _extent(out_shape[-1])
    rows = out_shape[:-1]
    k = te.reduce_axis((0, n), "k")
    ss = te.compute(rows, lambda *r: te.sum(_up(x, *r, k) * _up(x, *r, k), axis=k), name=name + "_sumsq")
    w = ins[1] if op.has_weight else None

    def f(*i):
        y = _up(x, *i) * te.rsqrt(ss[i[:-1]] * _inverse(n) + tirx.const(op.eps, "float32"))
        if w is not None:
            y = y * _up(w, i[-1])
        return y.astype(out_dtype)

    return te.compute(out_shape, f, name=name)


def batch_norm(op, ins, out_shape, out_dtype, name):
    """(x - mean[c]) * rsqrt(var[c] + eps) * weight[c] + bias[c], c = the index on axis 1: pointwise."""
    x, mean, var = ins[:3]
    w = ins[3] if op.has_weight else None
    b = ins[3 + op.has_weight] if op.has_bias else None

    def f(*i):
        c = i[1]
        y = (_up(x, *i) - _up(mean, c)) * te.rsqrt(_up(var, c) + tirx.const(op.eps, "float32"))
        if w is not None:
            y = y * _up(w, c)
        if b is not None:
            y = y + _up(b, c)
        return y.astype(out_dtype)

    return te.compute(out_shape, f, name=name)


def _prod_reducer():
    return te.comm_reducer(lambda a, b: a * b, lambda t: tirx.const(1, t), name="prod")


def reduce(op, ins, out_shape, out_dtype, name):
    (x,) = ins
    rank = len(x.shape)
    axes = sorted({a % rank for a in op.axes})
    raxes = [te.reduce_axis((0, _extent(x.shape[a])), f"r{a}") for a in axes]
    count = 1
    for a in axes:
        count = count * _extent(x.shape[a])
    cd = compute_dtype(str(x.dtype))

    def src(o):
        idx, oi, ri = [], 0, 0
        for a in range(rank):
            if a in axes:
                idx.append(raxes[ri])
                ri += 1
                if op.keepdims:
                    oi += 1
            else:
                idx.append(o[oi])
                oi += 1
        return _up(x, *idx)

    fn = op.fn
    if isinstance(count, int) and count == 0:
        # an empty reduction: TIR initializes the accumulator inside the (zero-trip) reduction loop, so the
        # output would be left unwritten; write the empty-set value instead (as the interpreter does)
        empty = {"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf, "mean": math.nan}[fn]
        return te.compute(out_shape, lambda *o: tirx.const(empty, cd).astype(out_dtype), name=name)
    reducer = {"sum": te.sum, "mean": te.sum, "max": te.max, "min": te.min, "prod": _prod_reducer()}[fn]
    acc = te.compute(out_shape, lambda *o: reducer(src(o), axis=raxes), name=name + "_acc")

    def f(*o):
        v = acc[o]
        if fn == "mean":
            v = v / tirx.const(count, cd)
        return v.astype(out_dtype)

    return te.compute(out_shape, f, name=name)
