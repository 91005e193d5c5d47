"""Slices folded into the kernel that reads them: no launch, no buffer.

A Slice (e.g. the q/k/v thirds of a packed QKV projection, or the rows of a RoPE table) whose every reader,
through views (Reshape, size-1 Transpose), is an attention input that attention's own prologue kernel reads (the bshd->bhsd
transpose, the RoPE kernel) is computed inside that kernel: it reads the sliced range of the source
directly. Static, non-negative starts and positive steps only (the index is then start + i * step; the stop,
static or symbolic, only sets the extent, known from the value's shape).
"""
from __future__ import annotations

from ..graph import Graph, Node, Value
from .attention_parts import attention_parts
from .groups import FusionRules, classify

# attention input -> the prologue parts that read it (any one present folds the input)
READERS = {"query": ("rope_q", "q_bhsd"), "key": ("rope_k", "k_bhsd"), "value": ("v_bhsd",),
           "rope_cos": ("rope_q",), "rope_sin": ("rope_q",)}


def _readers(graph: Graph, v: Value, users: dict) -> list[tuple[Node, int]] | None:
    """(node, input slot) of every reader of `v` that is not a view, through chains of views; None if a value
    on the way is a graph output."""
    outputs = {id(o) for o in graph.outputs}
    found, stack = [], [v]
    while stack:
        x = stack.pop()
        if id(x) in outputs:
            return None
        for node, slot in users.get(id(x), []):
            if classify(node) == "view":   # a Reshape, or a Transpose of size-1 axes: same memory order
                stack.append(node.outputs[0])
            else:
                found.append((node, slot))
    return found


def _static_slice(node: Node) -> bool:
    op = node.op
    return isinstance(op.start, int) and op.start >= 0 and op.step > 0   # the stop only sets the (known) extent


def folded_slices(graph: Graph, shapes: dict[int, tuple], rules: FusionRules, group_of: dict) -> set[str]:
    """Names of the Slice nodes folded into attention prologue kernels (see the module docstring)."""
    users = graph.users()
    parts_of: dict[str, list[str]] = {}
    out: set[str] = set()
    for node in graph.nodes:
        if node.op.op_name != "Slice" or not _static_slice(node):
            continue
        g = group_of.get(node.name)
        if g is None or len(g.nodes) != 1:
            continue
        src = node.inputs[0].producer
        if src is not None and src.name in out:
            continue
        readers = _readers(graph, node.outputs[0], users)
        if not readers:
            continue
        ok = True
        for reader, slot in readers:
            if reader.op.op_name != "Attention" or reader.op.spec.features_list():
                ok = False
                break
            if reader.name not in parts_of:
                parts_of[reader.name] = attention_parts(reader, shapes, rules)
            role = reader.op.spec.input_names()[slot]
            if not any(p in parts_of[reader.name] for p in READERS.get(role, ())):
                ok = False
                break
        if ok:
            out.add(node.name)
    return out
