"""Kernel groups: which IR nodes become one compiled kernel (the fusion decision).

Target-neutral and computed here, below both the backends (which build one kernel per group) and the
cost models (which price one row per group); a target's differences come in as `FusionRules`.

Rules (like Relay's, kept small):
- an anchor (Linear/MatMul, or a row reduction: Softmax/LayerNorm/RMSNorm/Reduce) starts a group;
- an elementwise op joins its producer's group as an epilogue when that producer is the
  group's current last node, the value between them has no other user and is not a graph
  output, and (for matmul anchors) its other operands are full-size or one row (a bias);
- injective ops (elementwise and layout: Transpose, Concat, Slice, Gather, Expand, Rotary)
  chain the same way among themselves;
- mul(act(x @ Wg), x @ Wu) with constant weights becomes one "gated" matmul group;
- Reshape is a view (no kernel), and so is a Transpose that moves only size-1 axes; Constant is uploaded
  once, Attention is its own step.
Producers are never fused into an anchor (a matmul would recompute them per tile).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph, Node

MATMUL_OPS = ("Linear", "MatMul")
ROW_OPS = ("Softmax", "LayerNorm", "RMSNorm", "Reduce", "CumSum", "Pool")
CONV_OPS = ("Convolution",)
ELEMENTWISE_OPS = ("Unary", "Binary", "Activation", "Where", "Cast")
LAYOUT_OPS = ("Transpose", "Concat", "Slice", "Gather", "Expand", "Rotary")
PER_CHANNEL_OPS = ("BatchNorm",)   # pointwise with (C,) operands on axis 1: injective, never a matmul/conv epilogue
INJECTIVE_OPS = ELEMENTWISE_OPS + LAYOUT_OPS + PER_CHANNEL_OPS


def classify(node: Node) -> str:
    """'const' | 'view' | 'attention' | 'index_copy' | 'matmul' | 'conv' | 'rows' | 'injective' | 'unsupported'."""
    name = node.op.op_name
    if name == "Constant":
        return "const"
    if name == "Reshape" or (name == "Transpose" and moves_only_unit_axes(node)):
        return "view"
    if name in ("Attention", "FusedAttention"):
        return "attention"
    if name == "IndexCopy":
        return "index_copy"
    if name in MATMUL_OPS:
        return "matmul"
    if name in CONV_OPS:
        return "conv"
    if name in ROW_OPS:
        return "rows"
    if name in INJECTIVE_OPS:
        return "injective"
    return "unsupported"


def moves_only_unit_axes(node: Node) -> bool:
    """A Transpose whose axes of (static) size 1 are the only ones that move: the element order in memory is
    unchanged, so it is a view (e.g. (1, 1, H, D) -> (1, H, 1, D) of a decode step's one token)."""
    shape = node.inputs[0].shape
    kept = [a for a in node.op.perm if not (isinstance(shape[a], int) and shape[a] == 1)]
    return kept == sorted(kept)


@dataclass
class Group:
    """Nodes compiled as one kernel; `nodes[-1]` writes the group's only materialized value."""

    kind: str                         # "matmul" | "gated" | "rows" | "injective"
    nodes: list[Node] = field(default_factory=list)

    @property
    def root(self) -> Node:
        return self.nodes[-1]

    @property
    def anchor(self) -> Node | None:
        return self.nodes[0] if self.kind != "injective" else None


def _row_like(shape, last) -> bool:
    """All dims 1 except possibly the last, which equals `last` (a bias / scale row) or 1."""
    return all(d == 1 for d in shape[:-1]) and (not shape or shape[-1] in (1, last))


def _epilogue_ok(node: Node, group: Group, shapes: dict[int, tuple]) -> bool:
    if node.op.op_name not in ELEMENTWISE_OPS:
        return False
    anchor_out = shapes[id(group.anchor.outputs[0])]
    out = shapes[id(node.outputs[0])]
    if out != anchor_out:
        return False
    if group.kind == "conv":  # the conv kernel's output is viewed (N, C, P): operands full-size or one element
        return all(shapes[id(v)] == out or all(d == 1 for d in shapes[id(v)]) for v in node.inputs
                   if id(v) not in {id(o) for n in group.nodes for o in n.outputs})
    if group.kind not in ("matmul", "gated"):
        return True
    inside = {id(v) for n in group.nodes for v in n.outputs}
    for v in node.inputs:
        if id(v) in inside:
            continue
        s = shapes[id(v)]
        if s != out and not _row_like(s, out[-1] if out else 1):
            return False
    return True


def _plain_linear(node: Node) -> bool:
    w = node.inputs[1]
    return (node.op.op_name == "Linear" and not node.op.has_bias and w.producer is not None
            and w.producer.op.op_name == "Constant")


def _gated_group(node: Node, group_of: dict[str, Group], users, outputs, shapes, gate_cols: int) -> Group | None:
    """mul(act(x @ Wg), x @ Wu) (SwiGLU/GeGLU; act optional) as ONE gated matmul group, or None.

    Both projections read the same x, so one kernel computes both halves per register tile from
    interleaved weight panels and never writes the up projection out (see matmul.pack_gated).
    """
    if node.op.op_name != "Binary" or node.op.fn != "mul" or len(node.inputs) != 2:
        return None
    found = []
    for v in node.inputs:
        p = v.producer
        g = group_of.get(p.name) if p is not None else None
        if g is None or g.kind != "matmul" or g.root is not p or len(users.get(id(v), [])) != 1 or id(v) in outputs:
            return None
        found.append(g)
    g1, g2 = found
    if g1 is g2:
        return None
    if len(g1.nodes) == 1 and len(g2.nodes) > 1:
        g1, g2 = g2, g1
    if len(g2.nodes) != 1 or any(n.op.op_name != "Activation" for n in g1.nodes[1:]):
        return None
    gate, up = g1.anchor, g2.anchor
    if not (_plain_linear(gate) and _plain_linear(up)) or gate.inputs[0] is not up.inputs[0]:
        return None
    wg, wu = shapes[id(gate.inputs[1])], shapes[id(up.inputs[1])]
    if not gate_cols or wg != wu or not isinstance(wg[-1], int) or wg[-1] % gate_cols or gate.inputs[1].dtype != up.inputs[1].dtype:
        return None
    return Group("gated", g1.nodes + g2.nodes + [node])


@dataclass(frozen=True)
class FusionRules:
    """What a target's kernels can fuse (from its backend plugin): the parameters of the one decision."""

    gate_cols: int = 0                 # gated-matmul panel width; 0: gate and up stay two matmuls
    attention_mask_full: bool = False  # the attention kernel reads the mask at (b, h): broadcast masks are expanded
    attention_generic: bool = False    # options["attention"] == "generic": the TE attention, never the flash kernel
    kernel_score_mods: tuple = ()      # score mods the attention kernels compute (Capabilities.kernel_score_mods)


def plan_groups(graph: Graph, shapes: dict[int, tuple], gate_cols: int = 0) -> tuple[list[Node], dict[str, Group]]:
    """Topological nodes and the group of every kernel node (keyed by node name).

    `shapes`: id(Value) -> shape (ints, or canonical symbolic dims for shape-generic builds).
    `gate_cols`: the target's gated-matmul panel width (0: no gated groups)."""
    order = graph.topological()
    users = graph.users()
    outputs = {id(v) for v in graph.outputs}
    group_of: dict[str, Group] = {}
    for node in order:
        kind = classify(node)
        if kind in ("matmul", "rows", "conv"):
            group_of[node.name] = Group(kind, [node])
            continue
        if kind != "injective":
            continue
        gated = _gated_group(node, group_of, users, outputs, shapes, gate_cols)
        if gated is not None:
            for n in gated.nodes:
                group_of[n.name] = gated
            continue
        joined = None
        for v in node.inputs:
            p = v.producer if v is not None else None
            g = group_of.get(p.name) if p is not None else None
            if g is None or g.root is not p or len(node.outputs) != 1:
                continue
            if len(users.get(id(v), [])) != 1 or id(v) in outputs:
                continue
            if g.anchor is not None and not _epilogue_ok(node, g, shapes):
                continue
            if g.anchor is None and shapes[id(node.outputs[0])] == () :
                continue
            joined = g
            break
        if joined is not None:
            joined.nodes.append(node)
            group_of[node.name] = joined
        else:
            group_of[node.name] = Group("injective", [node])
    return order, group_of
