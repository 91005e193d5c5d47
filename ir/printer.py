"""Stable text form of a graph (for golden tests and bug reports) and its parser.

    graph main(%x: float32[B, 8]) {
      %w = Constant {"key": "w", "dtype": "float32", "shape": [8, 8]}
      %y = Linear {"has_bias": false} (%x, %w) : float32[B, 8]
      return %y
    }
"""
from __future__ import annotations

import json
import re

import numpy as np

from .graph import Graph, Node, Value
from .ops import OP_REGISTRY
from .types import TensorType, numpy_dtype


def _type_text(t: TensorType) -> str:
    return str(t)


def print_ir(graph: Graph) -> str:
    """Render `graph` as text; the same graph always prints the same way."""
    args = ", ".join(f"%{v.name}: {_type_text(v.type)}" for v in graph.inputs)
    lines = [f"graph {graph.name}({args}) {{"]
    for n in graph.topological():
        outs = ", ".join(f"%{v.name}" for v in n.outputs)
        attrs = json.dumps(n.op.attrs(), separators=(", ", ": "))
        line = f"  {outs} = {n.op.op_name} {attrs}"
        if n.op.op_name != "Constant":
            ins = ", ".join("_" if v is None else f"%{v.name}" for v in n.inputs)
            line += f" ({ins}) : " + ", ".join(_type_text(v.type) for v in n.outputs)
        lines.append(line)
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines) + "\n"


_TYPE = re.compile(r"(\w+)\[(.*?)\]")


def _parse_type(text: str) -> TensorType:
    m = _TYPE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"cannot read type {text!r}")
    dims = [d.strip() for d in m.group(2).split(",") if d.strip()]
    return TensorType(m.group(1), tuple(int(d) if re.fullmatch(r"-?\d+", d) else d for d in dims))


def parse_ir(text: str, constants: dict[str, np.ndarray] | None = None, seed: int = 0) -> Graph:
    """Parse `print_ir` output. Constant data comes from `constants`, else seeded random values."""
    lines = [ln.rstrip() for ln in text.strip().splitlines()]
    head = re.fullmatch(r"graph (\w+)\((.*)\) \{", lines[0])
    if not head:
        raise ValueError(f"line 1: expected 'graph NAME(...) {{', got {lines[0]!r}")
    g = Graph(head.group(1))
    env: dict[str, Value] = {}
    for arg in re.findall(r"%([\w.]+): (\w+\[.*?\])", head.group(2)):
        v = Value(arg[0], _parse_type(arg[1]))
        g._names.add(v.name)
        g.inputs.append(v)
        env[v.name] = v
    rng = np.random.default_rng(seed)
    decoder = json.JSONDecoder()
    for lineno, line in enumerate(lines[1:], start=2):
        s = line.strip()
        if s == "}":
            break
        if s.startswith("return"):
            g.outputs = [env[x.strip()[1:]] for x in s[len("return"):].split(",") if x.strip()]
            continue
        m = re.match(r"(.+?) = (\w+) ", s)
        if not m:
            raise ValueError(f"line {lineno}: cannot read {s!r}")
        outs = [o.strip()[1:] for o in m.group(1).split(",")]
        op_name = m.group(2)
        if op_name not in OP_REGISTRY:
            raise ValueError(f"line {lineno}: unknown op {op_name!r}")
        attrs, end = decoder.raw_decode(s, m.end())
        op = OP_REGISTRY[op_name].from_attrs(attrs)
        rest = s[end:].strip()
        inputs: list[Value | None] = []
        if rest.startswith("("):
            arglist = rest[1:rest.index(")")]
            inputs = [None if a.strip() == "_" else env[a.strip()[1:]] for a in arglist.split(",") if a.strip()]
        node = Node(outs[0] if len(outs) == 1 else outs[0].rsplit(".", 1)[0], op, inputs, [])
        if op_name == "Constant":
            arr = (constants or {}).get(op.key)
            if arr is None:
                arr = rng.standard_normal(op.shape).astype(numpy_dtype(op.dtype)) if op.dtype.startswith(("float", "bfloat")) \
                    else np.zeros(op.shape, numpy_dtype(op.dtype))
            g.constants[op.key] = arr
        types = op.infer(node)
        node.outputs = [Value(name, t, node) for name, t in zip(outs, types)]
        for v in node.outputs:
            env[v.name] = v
            g._names.add(v.name)
        g._names.add(node.name)
        g.nodes.append(node)
    return g
