"""Elementwise ops with numpy broadcasting: unary math, binary arithmetic/comparison, activations, Where."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import require
from ..types import TensorType, broadcast_shapes
from .base import Op, input_types, register_op

UNARY_FUNCS = ("neg", "exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "abs", "reciprocal", "erf",
               "sin", "cos", "not", "floor", "ceil", "identity")
BINARY_ARITH = ("add", "sub", "mul", "div", "pow", "max", "min")
BINARY_COMPARE = ("eq", "ne", "lt", "le", "gt", "ge")
BINARY_LOGIC = ("and", "or", "xor")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "quick_gelu")


@register_op
@dataclass(frozen=True)
class Unary(Op):
    """y = fn(x), elementwise."""

    fn: str = "identity"
    op_name: ClassVar[str] = "Unary"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        require(self.fn in UNARY_FUNCS, node, f"unknown unary fn {self.fn!r}; supported: {', '.join(UNARY_FUNCS)}")
        (x,) = input_types(node)
        if self.fn == "not":
            require(x.dtype == "bool", node, f"'not' needs a bool input, got {x.dtype}")
        elif self.fn not in ("neg", "abs", "identity"):
            require(x.is_float, node, f"unary {self.fn} needs a float input, got {x.dtype}")
        return [x]


@register_op
@dataclass(frozen=True)
class Binary(Op):
    """z = fn(x, y) with numpy broadcasting; comparisons and logic return bool."""

    fn: str = "add"
    op_name: ClassVar[str] = "Binary"
    num_inputs: ClassVar = (2, 2)

    def infer(self, node):
        known = BINARY_ARITH + BINARY_COMPARE + BINARY_LOGIC
        require(self.fn in known, node, f"unknown binary fn {self.fn!r}; supported: {', '.join(known)}")
        a, b = input_types(node)
        require(a.dtype == b.dtype, node, f"binary {self.fn} operand dtypes differ: {a.dtype} vs {b.dtype} (insert a Cast)")
        shape = broadcast_shapes(a.shape, b.shape, node=node)
        if self.fn in BINARY_LOGIC:
            require(a.dtype == "bool", node, f"logic op {self.fn} needs bool inputs, got {a.dtype}")
        dtype = "bool" if self.fn in BINARY_COMPARE + BINARY_LOGIC else a.dtype
        return [TensorType(dtype, shape)]


@register_op
@dataclass(frozen=True)
class Activation(Op):
    """A neural-network activation: relu, gelu (erf), gelu_tanh, silu, sigmoid, tanh, quick_gelu."""

    kind: str = "relu"
    op_name: ClassVar[str] = "Activation"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        require(self.kind in ACTIVATIONS, node, f"unknown activation {self.kind!r}; supported: {', '.join(ACTIVATIONS)}")
        (x,) = input_types(node)
        require(x.is_float, node, f"activation needs a float input, got {x.dtype}")
        return [x]


@register_op
@dataclass(frozen=True)
class Where(Op):
    """out = cond ? x : y, broadcasting all three."""

    op_name: ClassVar[str] = "Where"
    num_inputs: ClassVar = (3, 3)

    def infer(self, node):
        c, x, y = input_types(node)
        require(c.dtype == "bool", node, f"condition must be bool, got {c.dtype}")
        require(x.dtype == y.dtype, node, f"branches differ in dtype: {x.dtype} vs {y.dtype}")
        return [TensorType(x.dtype, broadcast_shapes(c.shape, x.shape, y.shape, node=node))]
