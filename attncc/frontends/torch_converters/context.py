"""Conversion state shared by the torch converters: the IR graph being built and value helpers.

An FX node converts to one of: an IR `Value`; a `TorchConst` (a parameter, buffer or a
subgraph torch evaluated at import time because all its inputs were constant — turned into an
IR Constant only when a converted op uses it); a Python number or a symbolic `Dim` (SymInt
arithmetic); a list/tuple of those (multi-output ops, shape lists); or None.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ...ir import Graph, Value, dims as D
from ...ir.ops import Cast, Op

TORCH_TO_IR_DTYPE = {
    torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64",
    torch.int64: "int64", torch.int32: "int32", torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool",
}



def innermost_frame(stack_trace: str | None) -> str:
    """The user's innermost `File "...", line N, in f` line of an FX node's stack trace; "" when there is none.

    Traces come with a code line after each frame line, or without it (code typed at a prompt, `python - < file`:
    no source to show), or not at all."""
    lines = [ln.strip() for ln in (stack_trace or "").splitlines() if ln.strip()]
    frames = [ln for ln in lines if ln.startswith("File ")]
    return frames[-1] if frames else (lines[-1] if lines else "")

class TorchImportError(ValueError):
    """A torch graph attncc cannot import; the message names the FX node and aten op at fault."""


def ir_dtype(dtype: torch.dtype, where: str = "") -> str:
    """The IR dtype name of a torch dtype (clear error for unsupported ones)."""
    if dtype not in TORCH_TO_IR_DTYPE:
        raise TorchImportError(f"{where}dtype {dtype} has no IR equivalent; supported: "
                               f"{', '.join(str(d) for d in TORCH_TO_IR_DTYPE)}")
    return TORCH_TO_IR_DTYPE[dtype]


@dataclass
class TorchConst:
    """A tensor known at import time (parameter, buffer, or constant-evaluated subgraph)."""

    tensor: torch.Tensor
    name: str = "const"
    value: Value | None = None  # the IR Constant, once materialized


class TorchContext:
    """Builds the IR graph for one FX graph; converters call its helpers."""

    def __init__(self, graph: Graph, symbol_names: dict[str, str], dim_bounds: dict[str, int | None]):
        self.graph = graph
        self.symbol_names = symbol_names  # torch symbol (s27) -> user dim name (seq)
        self.dim_bounds = dim_bounds      # user dim name -> upper bound (None = unbounded)
        self.node = None                  # the FX node being converted (for errors and sources)

    # ---- errors and sources -------------------------------------------------------------
    def where(self) -> str:
        n = self.node
        return f"FX node '{n.name}' ({n.target}): " if n is not None else ""

    def error(self, message: str) -> TorchImportError:
        """An import error naming the current FX node and its aten op."""
        return TorchImportError(self.where() + message)

    @property
    def source(self) -> str | None:
        n = self.node
        if n is None:
            return None
        return f"{n.name} ({n.target})" + (f" at {line}" if (line := innermost_frame(n.meta.get("stack_trace"))) else "")

    # ---- emitting -------------------------------------------------------------------------
    def emit(self, op: Op, inputs: Sequence[Any], name: str | None = None) -> Value:
        """Add a single-output node; inputs may be anything `value()` accepts."""
        vals = [None if x is None else self.value(x) for x in inputs]
        return self.graph.add1(op, vals, name=name or (self.node.name if self.node is not None else None),
                               source=self.source)

    def emit_many(self, op: Op, inputs: Sequence[Any], name: str | None = None) -> list[Value]:
        vals = [None if x is None else self.value(x) for x in inputs]
        return self.graph.add(op, vals, name=name or (self.node.name if self.node is not None else None),
                              source=self.source)

    def constant(self, array, name: str = "const") -> Value:
        """A new IR Constant holding `array`."""
        array = np.asarray(array)
        if array.size > 1 and not any(array.strides):  # a meta-device weight's zero-stride placeholder stays a view
            return self.graph.add_constant(array, name=name)
        # np.asarray, not ascontiguousarray: that one turns a 0-d scalar into shape (1,) (x.sum() > 0 became [1])
        return self.graph.add_constant(np.asarray(array, order="C"), name=name)

    def value(self, x: Any, dtype: str | None = None) -> Value:
        """An IR Value for x (Value, TorchConst, Python number); cast to `dtype` when given."""
        if isinstance(x, Value):
            v = x
        elif isinstance(x, TorchConst):
            if x.value is None:
                x.value = self.constant(to_numpy(x.tensor, self.where()), name=x.name)
            v = x.value
        elif isinstance(x, (bool, int, float)) and not isinstance(x, str):
            dt = dtype or ("bool" if isinstance(x, bool) else "int64" if isinstance(x, int) else "float32")
            return self.constant(np.array(x, dtype=_np_dtype(dt)), name="scalar")
        elif isinstance(x, str):
            v = self.symbolic_scalar(x)
        else:
            raise self.error(f"cannot use {type(x).__name__} {x!r} as a tensor")
        if dtype is not None and v.dtype != dtype:
            v = self.graph.add1(Cast(dtype), [v], name=f"{self.node.name}_cast" if self.node is not None else "cast",
                                source=self.source)
        return v

    def symbolic_scalar(self, d: str) -> Value:
        """A 0-d int64 tensor holding symbolic size `d` (e.g. `positions + past_len`): one entry of a
        constant arange spanning the dim's declared range; without a declared maximum, the sum of `d` ones."""
        from ...ir.ops import Expand, Reduce, Reshape, Slice

        if any(self.dim_bounds.get(s) is None for s in D.symbols(d)):
            one = self.constant(np.array(1, np.int64), name="one")
            ones = self.graph.add1(Expand((d,)), [one], name="size_ones", source=self.source)
            return self.graph.add1(Reduce("sum", (0,)), [ones], name="size_scalar", source=self.source)

        upper = D.evaluate(d, {s: self.dim_bounds[s] for s in D.symbols(d)})
        table = self.constant(np.arange(upper + 1, dtype=np.int64), name="size_table")
        one = self.graph.add1(Slice(0, d, D.add(d, 1), 1), [table], name="size_value", source=self.source)
        return self.graph.add1(Reshape(()), [one], name="size_scalar", source=self.source)

    def const_array(self, x: Any) -> np.ndarray | None:
        """The numpy value of x when it is known at import time, else None."""
        if isinstance(x, TorchConst):
            return to_numpy(x.tensor, self.where())
        if isinstance(x, (bool, int, float)):
            return np.array(x)
        if isinstance(x, Value) and x.producer is not None and x.producer.op.op_name == "Constant":
            return self.graph.constants[x.producer.op.key]
        return None

    # ---- types and dims -------------------------------------------------------------------
    def dtype_of(self, x: Any) -> str:
        if isinstance(x, Value):
            return x.dtype
        if isinstance(x, TorchConst):
            return ir_dtype(x.tensor.dtype, self.where())
        raise self.error(f"{x!r} is not a tensor")

    def shape_of(self, x: Any) -> tuple:
        if isinstance(x, Value):
            return tuple(x.shape)
        if isinstance(x, TorchConst):
            return tuple(x.tensor.shape)
        if isinstance(x, (bool, int, float)):
            return ()
        raise self.error(f"{x!r} is not a tensor")

    def rank_of(self, x: Any) -> int:
        return len(self.shape_of(x))

    def out_dtype(self, index: int = 0) -> str:
        """The IR dtype torch recorded for this node's output."""
        val = self.node.meta.get("val")
        if isinstance(val, (list, tuple)):
            val = val[index]
        return ir_dtype(val.dtype, self.where())

    def dim(self, d: Any) -> D.Dim:
        """A size argument (int, SymInt, symbolic Dim) as an IR dim."""
        if isinstance(d, bool):
            raise self.error(f"expected a size, got bool {d}")
        if isinstance(d, int):
            return d
        if isinstance(d, str):
            return D.canonical(d)
        if isinstance(d, torch.SymInt):
            return self.sym_to_dim(d)
        raise self.error(f"expected a size, got {type(d).__name__} {d!r}")

    def sym_to_dim(self, s: Any) -> D.Dim:
        """Turn a torch SymInt (or int) into an IR dim, renaming torch's symbols to the user's Dim names."""
        if isinstance(s, int):
            return s
        expr = s.node.expr if isinstance(s, torch.SymInt) else s
        try:
            import sympy

            expr = sympy.expand(expr)
            if expr.is_Integer:
                return int(expr)
            text = str(expr).replace(" ", "")
            for sym in sorted(expr.free_symbols, key=lambda z: -len(str(z))):
                text = text.replace(str(sym), self.symbol_names.get(str(sym), str(sym)))
            return D.canonical(text)
        except (ValueError, TypeError) as e:
            raise self.error(f"symbolic size {expr} is not a polynomial of the input dims "
                             f"(only + and * are representable): {e}") from e

    def axis(self, axis: int, rank: int) -> int:
        if not -rank <= axis < rank:
            raise self.error(f"axis {axis} out of range for rank {rank}")
        return axis % rank


def _np_dtype(dtype: str):
    from ...ir.types import numpy_dtype

    return numpy_dtype(dtype)


def to_numpy(t: torch.Tensor, where: str = "") -> np.ndarray:
    """A detached numpy copy of a tensor (bfloat16 through the IR's numpy bfloat16).

    A tensor on the `meta` device has a shape and dtype but no data: it becomes a read-only, zero-stride
    array of zeros of that shape and dtype (no memory per element), which is all pricing reads."""
    if t.device.type == "meta":
        return np.broadcast_to(np.zeros((), _np_dtype(ir_dtype(t.dtype, where))), tuple(t.shape))
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.float().numpy().astype(_np_dtype("bfloat16"))
    ir_dtype(t.dtype, where)
    return t.numpy().copy()
