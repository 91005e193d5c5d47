"""Normalizations and reductions: Softmax, LayerNorm, RMSNorm, BatchNorm, Reduce."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..errors import require
from .base import Op, input_types, normalize_axis, register_op

REDUCTIONS = ("sum", "mean", "max", "min", "prod")


@register_op
@dataclass(frozen=True)
class Softmax(Op):
    """Softmax over one axis; the input and output share shape and dtype."""

    axis: int = -1
    op_name: ClassVar[str] = "Softmax"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        (x,) = input_types(node)
        normalize_axis(self.axis, x.rank, node)
        require(x.is_float, node, f"softmax needs a float input, got {x.dtype}")
        return [x]


@register_op
@dataclass(frozen=True)
class LayerNorm(Op):
    """LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias."""

    eps: float = 1e-5
    has_weight: bool = True
    has_bias: bool = True
    op_name: ClassVar[str] = "LayerNorm"
    num_inputs: ClassVar = (1, 3)

    def infer(self, node):
        ts = input_types(node)
        x = ts[0]
        require(len(ts) == 1 + self.has_weight + self.has_bias, node,
                f"has_weight={self.has_weight}, has_bias={self.has_bias} but {len(ts)} inputs were given")
        for t in ts[1:]:
            require(t.rank == 1 and D.equal(t.shape[0], x.shape[-1]), node, f"scale/bias {t} does not match features {x.shape[-1]}")
        require(self.eps >= 0, node, f"eps must be >= 0, got {self.eps}")
        return [x]


@register_op
@dataclass(frozen=True)
class RMSNorm(Op):
    """RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * weight."""

    eps: float = 1e-6
    has_weight: bool = True
    op_name: ClassVar[str] = "RMSNorm"
    num_inputs: ClassVar = (1, 2)

    def infer(self, node):
        ts = input_types(node)
        x = ts[0]
        require(len(ts) == 1 + self.has_weight, node, f"has_weight={self.has_weight} but {len(ts)} inputs were given")
        if self.has_weight:
            require(ts[1].rank == 1 and D.equal(ts[1].shape[0], x.shape[-1]), node, f"weight {ts[1]} does not match features {x.shape[-1]}")
        return [x]


@register_op
@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference batch norm over the channel axis 1 with running statistics:
    (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c]. Inputs: x, mean, var[, weight][, bias]."""

    eps: float = 1e-5
    has_weight: bool = True
    has_bias: bool = True
    op_name: ClassVar[str] = "BatchNorm"
    num_inputs: ClassVar = (3, 5)

    def infer(self, node):
        ts = input_types(node)
        x = ts[0]
        require(len(ts) == 3 + self.has_weight + self.has_bias, node,
                f"has_weight={self.has_weight}, has_bias={self.has_bias} but {len(ts)} inputs were given "
                "(x, mean, var[, weight][, bias])")
        require(x.rank >= 2, node, f"batch norm needs (N, C, ...) input, got rank {x.rank}")
        require(x.is_float, node, f"batch norm needs a float input, got {x.dtype}")
        for t in ts[1:]:
            require(t.rank == 1 and D.equal(t.shape[0], x.shape[1]), node,
                    f"per-channel statistic/affine {t} does not match channels {x.shape[1]}")
        require(self.eps >= 0, node, f"eps must be >= 0, got {self.eps}")
        return [x]


@register_op
@dataclass(frozen=True)
class Reduce(Op):
    """Reduce over `axes` with sum/mean/max/min/prod."""

    fn: str = "sum"
    axes: tuple[int, ...] = (-1,)
    keepdims: bool = False
    op_name: ClassVar[str] = "Reduce"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        require(self.fn in REDUCTIONS, node, f"unknown reduction {self.fn!r}; supported: {', '.join(REDUCTIONS)}")
        (x,) = input_types(node)
        axes = {normalize_axis(a, x.rank, node) for a in self.axes}
        shape = [1 if i in axes else d for i, d in enumerate(x.shape)] if self.keepdims else \
            [d for i, d in enumerate(x.shape) if i not in axes]
        return [x.with_shape(shape)]
