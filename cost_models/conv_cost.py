"""Cost rules of Convolution and Pool.

Convolution FLOPs = 2 · N · C_out · prod(out) · (C_in/groups) · prod(kernel) (one multiply-add per weight tap
per output). Bytes at main memory depend on the algorithm:
- direct: read the input and weights once, write the output: (x + w + y [+ bias]) · bytes;
- im2col (Chellapilla, Puri, Simard 2006, "High Performance Convolutional Neural Networks for Document
  Processing", https://hal.inria.fr/inria-00112631): the column matrix of (C_in/groups) · prod(kernel) rows and
  N · prod(out) columns per group is written once and read once by the matmul, on top of the direct bytes
  (kernel-size-times the input for stride 1: a 3x3 conv moves 9x its input twice more).
The priced algorithm mirrors the cpu target's choice (backends/core/conv_lowering.py: im2col from 8 output
channels per group, direct below); both byte counts are in `details`.
Pool: one compare (max) or add (avg) per window tap per output, plus one divide per output for avg; bytes: read
the input once, write the output.
"""
from __future__ import annotations

import math

from attncc.ir.types import DTYPE_BYTES

from .pricing import OpCost, price

MIN_IM2COL_ROWS = 8   # mirrors backends/core/conv_lowering.MIN_IM2COL_ROWS (cost_models never imports backends)


def conv_cost(node, bind, hw, ctx) -> OpCost:
    """FLOPs, bytes (direct and im2col) and intensity of one Convolution."""
    x, w = node.inputs[0], node.inputs[1]
    out = node.outputs[0]
    ws, os_ = bind.shape(w, node.name), bind.shape(out, node.name)
    n, c_out, groups = os_[0], os_[1], node.op.groups
    positions, taps = math.prod(os_[2:]), ws[1] * math.prod(ws[2:])
    elem = DTYPE_BYTES[x.dtype]
    direct = sum(bind.nbytes(v, node.name) for v in node.inputs if v is not None) + bind.nbytes(out, node.name)
    columns = groups * taps * n * positions * elem
    algorithm = "im2col" if c_out // groups >= MIN_IM2COL_ROWS else "direct"
    cost = OpCost(flops=2.0 * n * c_out * positions * taps, main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = float(direct + (2 * columns if algorithm == "im2col" else 0))
    if len(node.inputs) > 2:
        cost.vector_flops = float(n * c_out * positions)   # the bias add
    cost.parallel_tasks = n * c_out
    cost.details.update(algorithm=algorithm, direct_bytes=float(direct), im2col_bytes=float(direct + 2 * columns),
                        im2col_matrix_bytes=float(columns), groups=groups, taps=taps, positions=positions)
    return price(cost, hw, x.dtype, "matmul")


def pool_cost(node, bind, hw, ctx) -> OpCost:
    """Vector FLOPs and bytes of one Pool (windows read through the cache: the input moves once)."""
    x, out = node.inputs[0], node.outputs[0]
    xs, os_ = bind.shape(x, node.name), bind.shape(out, node.name)
    op = node.op
    window = math.prod(op.windows(tuple(xs[2:]))[0])   # adaptive: the (size // output_size) window it uses
    outputs = math.prod(os_)
    cost = OpCost(vector_flops=float(outputs * (window + (1 if op.kind == "avg" else 0))), main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = float(bind.nbytes(x, node.name) + bind.nbytes(out, node.name))
    cost.details.update(kind=op.kind, window=window)
    return price(cost, hw, out.dtype, "elementwise")
