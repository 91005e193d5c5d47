"""Import state shared by the ONNX converters: value map, known constants, attributes, errors.

`known` holds ONNX tensors whose value is known at import time (initializers, Constant nodes,
folded shape arithmetic). Shape tensors of values with symbolic dims are object arrays mixing
ints and dim strings ("batch", "past+seq"), so Reshape/Expand targets keep symbolic dims.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...ir import Graph, Value
from ...ir import dims as D
from ...ir.ops import Cast, Constant  # noqa: F401  (Constant re-exported for converters)
from ...ir.types import TensorType, dtype_of_numpy

ONNX_TO_IR_DTYPE = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.FLOAT16: "float16", onnx.TensorProto.BFLOAT16: "bfloat16",
    onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.BOOL: "bool",
}


class ONNXImportError(ValueError):
    """A node attncc cannot import as written; names the node, op type and the unsupported field."""


def ir_dtype(elem_type: int, where: str = "") -> str:
    """IR dtype name for an ONNX TensorProto elem type."""
    if elem_type not in ONNX_TO_IR_DTYPE:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() else elem_type
        raise ONNXImportError(f"{where}ONNX dtype {name} has no IR equivalent; supported: "
                              f"{', '.join(sorted(set(ONNX_TO_IR_DTYPE.values())))}")
    return ONNX_TO_IR_DTYPE[elem_type]


class ImportContext:
    """Maps ONNX tensor names to IR values or known arrays while converting one graph."""

    def __init__(self, graph: Graph, opsets: dict[str, int]):
        self.graph = graph
        self.opsets = opsets
        self.values: dict[str, Value] = {}
        self.known: dict[str, np.ndarray] = {}
        self.node: onnx.NodeProto | None = None
        self.unavailable: dict[str, str] = {}  # outputs a converter could not produce -> why

    # ---- errors -------------------------------------------------------------------------
    def where(self, node: onnx.NodeProto | None = None) -> str:
        n = node or self.node
        if n is None:
            return ""
        dom = n.domain or "ai.onnx"
        return f"ONNX node '{n.name or n.output[0]}' (op {n.op_type}, domain '{dom}', opset {self.opsets.get(n.domain or '')}): "

    def fail(self, message: str) -> None:
        """Raise ONNXImportError naming the current node."""
        raise ONNXImportError(self.where() + message)

    def check(self, cond: bool, message: str) -> None:
        if not cond:
            self.fail(message)

    # ---- node inputs --------------------------------------------------------------------
    def has_input(self, node: onnx.NodeProto, i: int) -> bool:
        return len(node.input) > i and node.input[i] != ""

    def is_known(self, name: str) -> bool:
        return name in self.known

    def const(self, node: onnx.NodeProto, i: int) -> np.ndarray | None:
        """The known value of input i (None when absent or computed at run time)."""
        if not self.has_input(node, i):
            return None
        return self.known.get(node.input[i])

    def require_const(self, node: onnx.NodeProto, i: int, what: str) -> np.ndarray:
        """The known value of input i, or a clear error saying a run-time value is unsupported there."""
        v = self.const(node, i)
        if v is None:
            self.fail(f"input {i} ('{what}') must be a constant known at import time "
                      f"(initializer, Constant or foldable shape arithmetic); got run-time tensor '{node.input[i]}'")
        return v

    def input(self, node: onnx.NodeProto, i: int) -> Value | None:
        """The IR value for input i (materializing a known constant); None when the optional input is absent."""
        if not self.has_input(node, i):
            return None
        return self.value(node.input[i])

    def value(self, name: str) -> Value:
        if name in self.values:
            return self.values[name]
        if name in self.known:
            arr = self.known[name]
            if arr.dtype == object:
                try:
                    arr = arr.astype(np.int64)
                except (TypeError, ValueError):  # symbolic dims used as data: computed at run time
                    from .symbolic import symbolic_tensor

                    v = symbolic_tensor(self, arr)
                    self.values[name] = v
                    return v
            # np.asarray, not ascontiguousarray: that one turns a 0-d scalar (a Gather index) into shape (1,)
            v = self.graph.add_constant(np.asarray(arr, order="C"), name=name or "const")
            self.values[name] = v
            return v
        if name in self.unavailable:
            self.fail(f"reads '{name}', which is not supported: {self.unavailable[name]}")
        self.fail(f"input '{name}' is not defined by any earlier node, initializer or graph input")

    def type_of(self, name: str) -> TensorType:
        """IR type of an ONNX tensor (known or computed)."""
        if name in self.values:
            return self.values[name].type
        arr = self.known[name]
        return TensorType("int64" if arr.dtype == object else dtype_of_numpy(arr.dtype), arr.shape)

    def input_type(self, node: onnx.NodeProto, i: int) -> TensorType:
        return self.type_of(node.input[i])

    # ---- attributes ---------------------------------------------------------------------
    @staticmethod
    def attrs(node: onnx.NodeProto) -> dict[str, Any]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        for a in node.attribute:
            if a.name == name:
                v = helper.get_attribute_value(a)
                if isinstance(v, bytes):
                    return v.decode()
                if isinstance(v, onnx.TensorProto):
                    return numpy_helper.to_array(v)
                return v
        return default

    def reject_attrs(self, node: onnx.NodeProto, allowed: dict[str, Any]) -> None:
        """Fail on attributes whose value differs from the only one supported (name -> supported value)."""
        for name, supported in allowed.items():
            val = self.attr(node, name, supported)
            if val != supported:
                self.fail(f"attribute {name}={val!r} is not supported (only {supported!r})")

    # ---- building -----------------------------------------------------------------------
    @property
    def source(self) -> str:
        n = self.node
        return f"onnx:{n.op_type}:{n.name or n.output[0]}" if n is not None else "onnx"

    def add1(self, op, inputs: list[Value | None], name: str | None = None) -> Value:
        """Append an IR node for the current ONNX node (errors from shape rules name it)."""
        hint = name or (self.node.name or self.node.output[0] if self.node is not None else None)
        return self.graph.add1(op, inputs, name=hint, source=self.source)

    def add(self, op, inputs: list[Value | None], name: str | None = None) -> list[Value]:
        hint = name or (self.node.name or self.node.output[0] if self.node is not None else None)
        return self.graph.add(op, inputs, name=hint, source=self.source)

    def constant(self, array, name: str = "const", dtype: str | None = None) -> Value:
        """A new IR constant (cast to `dtype` when given)."""
        arr = np.asarray(array)
        if dtype is not None:
            from ...ir.types import numpy_dtype

            arr = arr.astype(numpy_dtype(dtype))
        return self.graph.add_constant(np.asarray(arr, order="C"), name=name)

    def cast(self, v: Value, dtype: str) -> Value:
        return v if v.dtype == dtype else self.add1(Cast(dtype), [v])


def dims_of(arr: np.ndarray) -> tuple:
    """A known 1-D shape tensor as a tuple of Dims (ints or canonical symbolic strings)."""
    return tuple(int(x) if not isinstance(x, str) else D.canonical(x) for x in np.asarray(arr).reshape(-1).tolist())
