"""The Op base class and the op registry.

An op is a frozen dataclass of typed attributes. `infer` computes output types from
input types (and is the single source of shape rules); `verify` re-checks a node
against them, so the verifier and the builder can never disagree.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import IRError, require
from ..types import TensorType

if TYPE_CHECKING:
    from ..graph import Node

OP_REGISTRY: dict[str, type["Op"]] = {}


def register_op(cls: type["Op"]) -> type["Op"]:
    """Class decorator: make an op constructible by name (parser, JSON)."""
    OP_REGISTRY[cls.op_name] = cls
    return cls


@dataclasses.dataclass(frozen=True)
class Op:
    """Base of all ops. Subclasses set `op_name`, `num_inputs` and implement `infer`."""

    op_name: ClassVar[str] = "Op"
    # (min, max) number of inputs; max None = variadic
    num_inputs: ClassVar[tuple[int, int | None]] = (0, None)

    def infer(self, node: "Node") -> list[TensorType]:
        """Output types for `node`'s inputs; raises IRError on a broken rule."""
        raise NotImplementedError

    def verify(self, node: "Node") -> None:
        """Check input arity, attributes and that the node's outputs match `infer`."""
        lo, hi = self.num_inputs
        n = len(node.inputs)
        require(n >= lo and (hi is None or n <= hi), node,
                f"expects {lo}{'' if hi == lo else '..' + ('' if hi is None else str(hi))} inputs, got {n}")
        expected = self.infer(node)
        require(len(expected) == len(node.outputs), node,
                f"has {len(node.outputs)} outputs but the op produces {len(expected)}")
        for i, (t, v) in enumerate(zip(expected, node.outputs)):
            require(t == v.type, node, f"output {i} '{v.name}' is typed {v.type} but the op produces {t}")

    def attrs(self) -> dict[str, Any]:
        """Attributes as plain data (for printing and JSON)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> "Op":
        """Rebuild from `attrs()` output."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name in attrs:
                v = attrs[f.name]
                kwargs[f.name] = tuple(_tuplify(x) for x in v) if isinstance(v, list) else v
        return cls(**kwargs)


def _plain(v):
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return v


def _tuplify(v):
    return tuple(_tuplify(x) for x in v) if isinstance(v, list) else v


def input_types(node: "Node", allow_none: bool = False) -> list[TensorType | None]:
    """Types of a node's inputs (None for absent optional inputs when allowed)."""
    out = []
    for i, v in enumerate(node.inputs):
        if v is None:
            require(allow_none, node, f"input {i} is missing")
            out.append(None)
        else:
            out.append(v.type)
    return out


def normalize_axis(axis: int, rank: int, node: "Node") -> int:
    """Turn a possibly negative axis into 0..rank-1, raising a clear error when out of range."""
    require(-rank <= axis < rank, node, f"axis {axis} out of range for rank {rank}")
    return axis % rank


__all__ = ["Op", "OP_REGISTRY", "register_op", "IRError", "require", "input_types", "normalize_axis"]
