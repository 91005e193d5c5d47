"""The execution plan: pure data (JSON-serializable) saying which buffers exist and which compiled
function runs on which of them, plus the TVM PrimFuncs to build (kept out of the JSON).

Values are named by their IR value names (derived values get a suffix). Storage kinds:
  input   a graph input, bound per call (zero-copy from torch through DLPack)
  output  a graph output written by a kernel, allocated fresh per call
  buffer  an intermediate, allocated once per plan and reused across calls
  const   a graph constant (optionally repacked, e.g. weight panels), uploaded once
  view    another value's memory under a different shape/dtype (Reshape, 2-D matmul views)

Shapes are ints, or (shape-generic plans) the IR's text of symbolic dims ("past+1"), evaluated per
call from the input shapes through `dims`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ...ir import dims as irdims
from .notes import as_note


@dataclass
class Plan:
    """What to allocate and what to call, in order, for one set of concrete input shapes."""

    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # shape-generic plans: where each dim name is read, {name: [input index, axis]}; {} for static plans
    dims: dict[str, list[int]] = field(default_factory=dict)
    # outputs that ARE an input's memory, written in place (a static KV cache): {output: input}
    aliases: dict[str, str] = field(default_factory=dict)
    funcs: dict[str, Any] = field(default_factory=dict, repr=False)   # name -> tvm PrimFunc (not serialized)

    def add_value(self, name: str, shape, dtype: str, storage: str, **extra) -> str:
        """Declare a value; returns its name. Views name their `base` value."""
        if name in self.values:
            raise ValueError(f"plan value {name!r} declared twice")
        self.values[name] = {"shape": [_dim(d) for d in shape], "dtype": dtype, "storage": storage, **extra}
        return name

    def fresh(self, hint: str) -> str:
        """A value name not used yet, derived from `hint`."""
        name, i = hint, 0
        while name in self.values:
            i += 1
            name = f"{hint}.{i}"
        return name

    def arg(self, name: str, shape=None, dtype: str | None = None) -> list:
        """A call argument: a value seen under `shape` (and `dtype`) — a zero-copy view when they differ."""
        info = self.values[name]
        return [name, [_dim(d) for d in (shape if shape is not None else info["shape"])], dtype or info["dtype"]]

    DIM = "#dim"   # a call argument that is a dim's value (an int32 scalar), not a tensor

    @staticmethod
    def dim_arg(text: str) -> list:
        """A call argument passing the value of dim `text` (evaluated per call)."""
        return [Plan.DIM, text, "int32"]

    def add_call(self, func_name: str, prim_func, args: list, node: str, op: str) -> None:
        """Run compiled function `func_name` on `args` (outputs last)."""
        self.funcs[func_name] = prim_func
        self.steps.append({"kind": "call", "func": func_name, "args": args, "node": node, "op": op})

    def to_json(self) -> str:
        """The plan as JSON, with `dim_polys` (every symbolic dim text as [[coefficient, [symbols]], ...])
        so a runtime without attncc's dim parser can evaluate shapes."""
        return json.dumps({"inputs": self.inputs, "outputs": self.outputs, "values": self.values,
                           "steps": self.steps, "notes": [as_note(n).to_dict() for n in self.notes], "dims": self.dims,
                           "aliases": self.aliases, "dim_polys": self.dim_polys()}, indent=1)

    def dim_polys(self) -> dict[str, list]:
        texts = {d for info in self.values.values() for d in info["shape"] if isinstance(d, str)}
        for step in self.steps:
            for a in step.get("args", []) + [step[k] for k in ("q", "k", "v", "mask", "out") if step.get(k)]:
                texts |= {d for d in ([a[1]] if a[0] == Plan.DIM else a[1]) if isinstance(d, str)}
        return {t: [[c, list(syms)] for syms, c in irdims._parse(t).items()] for t in sorted(texts)}

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        return cls(d["inputs"], d["outputs"], d["values"], d["steps"], [as_note(n) for n in d["notes"]], d.get("dims", {}),
                   d.get("aliases", {}))

    @property
    def generic(self) -> bool:
        """True when shapes hold symbolic dims bound per call."""
        return bool(self.dims)


def materialize_constant(plan: Plan, constants: dict, name: str, matmul):
    """The array behind a const plan value (weights repacked by the target's `matmul` strategy: numpy, no TVM)."""
    info = plan.values[name]
    arr = constants[info["source"]]
    if info.get("pack") == "panels":
        return matmul.pack_weight(arr)
    if info.get("pack") == "gated":
        return matmul.pack_gated(arr, constants[info["source_up"]])
    return arr


def _dim(d):
    """A plan dim: an int, or the IR's canonical text of a symbolic dim."""
    if isinstance(d, str):
        return d
    return int(d)
