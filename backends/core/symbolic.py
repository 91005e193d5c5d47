"""Symbolic dims in generated kernels: IR dims ("past+1", "batch*seq") as TIR expressions.

A shape-generic build names every dynamic dim once as a TIR variable; kernels take their sizes
from the tensors they are called with (TVM binds the variables from the DLTensor shapes), so one
build serves every size. Plans keep dims in the IR's text form; the runner evaluates them per call.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from tvm import tirx

from ...ir import dims as irdims

Dim = "int | str"


class SymbolTable:
    """TIR variables for one kernel: one int32 variable per distinct dim text ("past+1" is its own
    variable, not past + 1), so TVM can bind every variable straight from some argument's shape;
    the runner guarantees the relations between them (it evaluates every shape from the same dims)."""

    def __init__(self):
        self.vars: dict[str, tirx.Var] = {}

    def var(self, name: str) -> tirx.Var:
        if name not in self.vars:
            safe = "".join(c if c.isalnum() else "_" for c in name)
            self.vars[name] = tirx.Var(f"n_{safe}", "int32")
        return self.vars[name]

    def expr(self, d):
        """An IR dim as an int (static) or this table's variable for its text."""
        if isinstance(d, int) or not isinstance(d, str):
            return d
        return self.var(irdims.canonical(d))

    def shape(self, shape: Sequence) -> tuple:
        return tuple(self.expr(d) for d in shape)

    def scalar_params(self, tensors) -> list[tuple[tirx.Var, str]]:
        """Variables no tensor dim binds (e.g. a Slice starting at "past" in a kernel whose buffers never have
        a "past" dim): they become int32 scalar parameters, passed by the runner. Returns (var, dim text)."""
        bound = {id(d) for t in tensors for d in t.shape if isinstance(d, tirx.Var)}
        return [(v, text) for text, v in self.vars.items() if id(v) not in bound]


def static_int(d) -> int | None:
    """d as a Python int when it is a compile-time constant (int or IntImm), else None."""
    if isinstance(d, int):
        return d
    if isinstance(d, tirx.IntImm):
        return int(d.value)
    return None


def is_one(d) -> bool:
    return static_int(d) == 1


class DimEvaluator:
    """Evaluates plan dims for one call quickly: each dim text is parsed once, then reused."""

    def __init__(self):
        self._polys: dict[str, list] = {}

    def __call__(self, d, env: Mapping[str, int]) -> int:
        if isinstance(d, int):
            return d
        poly = self._polys.get(d)
        if poly is None:
            poly = self._polys[d] = list(irdims._parse(d).items())
        total = 0
        for key, coeff in poly:
            for s in key:
                coeff *= env[s]
            total += coeff
        return total

    def shape(self, shape: Sequence, env: Mapping[str, int]) -> tuple[int, ...]:
        return tuple(self(d, env) for d in shape)
