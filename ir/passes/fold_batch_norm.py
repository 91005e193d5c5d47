"""fold-batch-norm: fold an inference BatchNorm into the convolution or linear layer that produces its input.

With s = weight / sqrt(var + eps) per output channel, BN(conv(x, W, b)) = conv(x, W * s, (b - mean) * s + bias):
the scaled weights and the new bias are computed once here, so the BatchNorm costs nothing at run time.
Matched producers (the value between them read only by the BatchNorm, weights and statistics Constants):
- Convolution (BN channel axis 1 = the conv's output channels);
- Linear with a rank-2 output (BatchNorm1d over (N, C): the channels are the linear's output features),
  also through a Reshape that keeps the last dim (LeViT's `bn(linear(x).flatten(0, 1)).reshape_as(x)`).
Anything else keeps its BatchNorm (executed as a per-channel pointwise kernel).
Requires: constant-fold (weights as Constants). Guarantees: same outputs (up to fp rounding); no BatchNorm
whose input comes straight from a single-use Convolution/Linear with constant weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import dims as D
from ..graph import Graph, Node
from ..ops import Linear
from ._rewrite import constant_array, release, use_count
from .base import Pass, register_pass


def _stats(graph: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) per channel in float64, or None when a statistic or affine is not a Constant."""
    arrays = [constant_array(graph, v) for v in bn.inputs[1:]]
    if any(a is None for a in arrays):
        return None
    mean, var = (a.astype(np.float64) for a in arrays[:2])
    rest = [a.astype(np.float64) for a in arrays[2:]]
    weight = rest.pop(0) if bn.op.has_weight else np.ones_like(mean)
    bias = rest.pop(0) if bn.op.has_bias else np.zeros_like(mean)
    scale = weight / np.sqrt(var + bn.op.eps)
    return scale, bias - mean * scale


def _producer(graph: Graph, bn: Node) -> tuple[Node, Node | None] | None:
    """(conv or linear, reshape between them or None) when the BatchNorm can fold into it."""
    x = bn.inputs[0]
    reshape = None
    p = x.producer
    if p is not None and p.op.op_name == "Reshape" and x.rank == 2 and use_count(graph, x) == 1:
        src = p.inputs[0]
        if src.rank >= 2 and D.equal(src.shape[-1], x.shape[-1]):
            reshape, x, p = p, src, src.producer
    if p is None or use_count(graph, x) != 1 or x in graph.outputs:
        return None
    if p.op.op_name == "Convolution" and reshape is None:
        return p, None
    if p.op.op_name == "Linear" and (reshape is not None or x.rank == 2):
        return p, reshape
    return None


def fold_one(graph: Graph, bn: Node) -> bool:
    """Fold `bn` into its producer; False when the pattern does not match."""
    found, stats = _producer(graph, bn), _stats(graph, bn)
    if found is None or stats is None:
        return False
    layer, reshape = found
    weight = constant_array(graph, layer.inputs[1])
    if weight is None:
        return False
    has_bias = len(layer.inputs) > 2 and layer.inputs[2] is not None
    bias = constant_array(graph, layer.inputs[2]) if has_bias else None
    if has_bias and bias is None:
        return False
    scale, shift = stats
    w64 = weight.astype(np.float64)
    if layer.op.op_name == "Convolution":   # weight (C_out, C_in/groups, *kernel)
        new_w = w64 * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    else:                                   # weight (in_features, out_features)
        new_w = w64 * scale.reshape(1, -1)
    new_b = shift + (bias.astype(np.float64) * scale if bias is not None else 0.0)
    w_v = graph.add_constant(new_w.astype(weight.dtype), name=layer.name + "_bn_weight")
    b_v = graph.add_constant(new_b.astype(weight.dtype), name=layer.name + "_bn_bias")
    op = layer.op if layer.op.op_name == "Convolution" else Linear(has_bias=True)
    old_out = layer.outputs[0]
    release(graph, layer)
    new_out = graph.add1(op, [layer.inputs[0], w_v, b_v], name=layer.name, source=layer.source)
    graph.replace_all_uses(old_out, new_out)
    graph.replace_all_uses(bn.outputs[0], bn.inputs[0])   # the reshape (if any) now reads the folded layer
    return True


@register_pass
@dataclass(frozen=True)
class FoldBatchNorm(Pass):
    """Fold inference BatchNorm into the preceding Convolution / Linear (see the module docstring)."""

    name: ClassVar[str] = "fold-batch-norm"

    def run(self, graph: Graph) -> Graph:
        folded = sum(fold_one(graph, bn) for bn in graph.find("BatchNorm"))
        if folded:
            graph.dead_code_elimination()
        return graph


__all__ = ["FoldBatchNorm", "fold_one"]
