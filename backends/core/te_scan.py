"""TE definition of CumSum: a serial running sum along the axis, one parallel task per line of the other
axes (topi's scan loop nest, plus `reverse`). Narrow floats accumulate in fp32, like the reference."""
from __future__ import annotations

from tvm import te
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from .symbolic import static_int
from .te_elementwise import compute_dtype


def _unravel(flat, dims):
    """Row-major index tuple of `flat` over `dims` (an empty tuple for no dims)."""
    idx = []
    for d in reversed(dims):
        idx.append(flat % d)
        flat = flat // d
    return tuple(reversed(idx))


def cumsum(op, ins, out_shape, out_dtype, name):
    """out[..., k, ...] = sum of x along `op.axis` up to k (before k when exclusive; from the end when reverse)."""
    (x,) = ins
    shape = [d if static_int(d) is None else static_int(d) for d in x.shape]  # symbolic dims stay TIR vars
    axis = op.axis % len(shape)
    n = shape[axis]
    others = shape[:axis] + shape[axis + 1:]
    lines = 1
    for d in others:
        lines *= d
    acc = compute_dtype(str(x.dtype))

    def body(src, dst):
        with IRBuilder() as ib:
            src, dst = T.buffer_proxy(src), T.buffer_proxy(dst)
            with T.parallel(0, lines) as line:
                rest = _unravel(line, others)

                def at(k):
                    return rest[:axis] + (k,) + rest[axis:]

                first = n - 1 if op.reverse else 0
                dst[at(first)] = T.Cast(acc, 0) if op.exclusive else T.Cast(acc, src[at(first)])
                with T.serial(1, n) as step:
                    k = n - 1 - step if op.reverse else step
                    prev = k + 1 if op.reverse else k - 1  # written one step before
                    add = src[at(prev)] if op.exclusive else src[at(k)]
                    dst[at(k)] = dst[at(prev)] + T.Cast(acc, add)
            return ib.get()

    sums = te.extern([tuple(shape)], [x], lambda i, o: body(i[0], o[0]), dtype=acc, name=name + "_scan")
    return te.compute(out_shape, lambda *i: sums[i].astype(out_dtype), name=name)
