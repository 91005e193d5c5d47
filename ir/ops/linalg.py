"""Matrix products: MatMul (numpy semantics, batched with broadcasting) and Linear (x @ W + b)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..errors import require
from ..types import broadcast_shapes
from .base import Op, input_types, register_op


@register_op
@dataclass(frozen=True)
class MatMul(Op):
    """a @ b with numpy batching rules (both ranks >= 2)."""

    op_name: ClassVar[str] = "MatMul"
    num_inputs: ClassVar = (2, 2)

    def infer(self, node):
        a, b = input_types(node)
        require(a.rank >= 2 and b.rank >= 2, node, f"matmul needs rank >= 2 operands, got {a} and {b}")
        require(a.dtype == b.dtype, node, f"matmul operand dtypes differ: {a.dtype} vs {b.dtype}")
        require(D.equal(a.shape[-1], b.shape[-2]), node, f"contraction dims differ: {a} @ {b}")
        batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], node=node)
        return [a.with_shape(batch + (a.shape[-2], b.shape[-1]))]


@register_op
@dataclass(frozen=True)
class Linear(Op):
    """y = x @ weight (+ bias); weight is (in_features, out_features)."""

    has_bias: bool = False
    op_name: ClassVar[str] = "Linear"
    num_inputs: ClassVar = (2, 3)

    def infer(self, node):
        ts = input_types(node)
        x, w = ts[0], ts[1]
        require(len(ts) == (3 if self.has_bias else 2), node,
                f"has_bias={self.has_bias} but {len(ts)} inputs were given")
        require(w.rank == 2, node, f"weight must be rank 2 (in, out), got {w}")
        require(x.dtype == w.dtype, node, f"input and weight dtypes differ: {x.dtype} vs {w.dtype}")
        require(D.equal(x.shape[-1], w.shape[0]), node, f"input features {x.shape[-1]} != weight rows {w.shape[0]}")
        if self.has_bias:
            b = ts[2]
            require(b.rank == 1 and D.equal(b.shape[0], w.shape[1]), node, f"bias {b} does not match weight {w}")
        return [x.with_shape(x.shape[:-1] + (w.shape[1],))]
