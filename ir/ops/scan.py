"""Scans: CumSum (running sum along one axis), as in torch.cumsum and ONNX CumSum."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import require
from .base import Op, input_types, normalize_axis, register_op


@register_op
@dataclass(frozen=True)
class CumSum(Op):
    """Running sum of the input along `axis`; output shape and dtype equal the input's.

    exclusive: element i sums elements before i only (the first is 0), as ONNX's `exclusive=1`.
    reverse: sum from the end of the axis towards the start, as ONNX's `reverse=1`.
    Bool inputs must be cast first (torch promotes them to int64, ONNX rejects them).
    """

    axis: int = -1
    exclusive: bool = False
    reverse: bool = False
    op_name: ClassVar[str] = "CumSum"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        (x,) = input_types(node)
        require(x.rank >= 1, node, f"cumsum needs a tensor of rank >= 1, got a scalar {x}")
        normalize_axis(self.axis, x.rank, node)
        require(x.dtype != "bool", node, "cumsum of a bool tensor is not defined; cast it to an integer or float "
                "dtype first (torch.cumsum promotes bool to int64)")
        for field in ("exclusive", "reverse"):
            require(isinstance(getattr(self, field), bool), node,
                    f"{field} must be a bool, got {getattr(self, field)!r}")
        return [x]
