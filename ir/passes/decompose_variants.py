"""decompose-variants: rewrite Attention ops with variant features into plain Attention + standard IR ops.

Each feature kind's rewrite is `DECOMPOSITIONS[kind]` (ir/passes/decompose/, one file per family); score mods
compose, so one rewrite handles all of a node's score mods. A node whose rewrite raises `Undecomposable` (a
recurrence with no matrix form, a symbolic dim a mask constant needs, ...) or whose kind has no rewrite is
left unchanged and recorded in graph.diagnostics with the reason, so a backend can fall back and say why.
Option `keep` ("alibi", several joined by "+"): score-mod kinds the target's attention kernel computes itself
(Capabilities.kernel_score_mods); a node whose only features are those stays as is (no bias constant is built).
Requires: nothing (run it in a backend, after the cost model and tiling saw the features).
Guarantees: same outputs (the interpreter agrees to rounding); decomposed Attention ops have no features
and no tiling (the kernel heuristics pick tiles); the replaced output values keep their names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..graph import Graph, Node
from ._rewrite import release
from .base import Pass, register_pass
from .decompose import DECOMPOSITIONS, Builder, Undecomposable


def decomposition_for(node: Node):
    """(kind, function) used for `node`, or (kind, None) when no rewrite is registered."""
    spec = node.op.spec
    feat = spec.kv_source or spec.head_mixing or spec.score_mods[0]
    return feat.kind, DECOMPOSITIONS.get(feat.kind)


def kernel_computes(spec, keep) -> bool:
    """True when every feature of `spec` is a score mod in `keep` and sits where the kernels apply it (before a
    softcap-after-mask, which the kernels do not run): the attention kernel computes it, nothing is rewritten."""
    feats = spec.features_list()
    # a bucketed_bias table takes the kernel's mask argument: only without a mask input of its own
    return bool(feats) and all(f.kind in keep and (f.kind != "bucketed_bias" or spec.mask.input == "none")
                               for f in feats) and not (spec.softcap and spec.softcap_order == "after_mask")


def decompose_node(graph: Graph, node: Node) -> str | None:
    """Rewrite one featured Attention node in place; None on success, else the reason it was kept."""
    kind, fn = decomposition_for(node)
    if fn is None:
        return f"no decomposition is registered for feature kind {kind!r} (known: {sorted(DECOMPOSITIONS)})"
    mark = len(graph.nodes)
    b = Builder(graph, node)
    try:
        outs = fn(b)
    except Undecomposable as e:
        _drop_added(graph, mark)
        return str(e)
    old = list(node.outputs)
    if len(outs) != len(old) or any(tuple(n.shape) != tuple(o.shape) or n.dtype != o.dtype for n, o in zip(outs, old)):
        raise AssertionError(f"decompose-variants: the {kind} rewrite of node '{node.name}' produced "
                             f"{[str(n.type) for n in outs]}, the node has {[str(o.type) for o in old]}")
    added = {id(n) for n in graph.nodes[mark:]}
    release(graph, node)
    for new, o in zip(outs, old):
        graph.replace_all_uses(o, new)
        if new.producer is not None and id(new.producer) in added and o.name not in graph._names:
            graph._names.add(o.name)   # the result keeps the attention's output name (dumps and plans stay readable)
            new.name = o.name
    return None


def _drop_added(graph: Graph, mark: int) -> None:
    """Undo a partial rewrite: remove the nodes (and constants) added after `mark`."""
    for n in graph.nodes[mark:]:
        if n.op.op_name == "Constant":
            graph.constants.pop(n.op.key, None)
    graph.nodes = graph.nodes[:mark]


@register_pass
@dataclass(frozen=True)
class DecomposeVariants(Pass):
    """Rewrite variant-feature Attention ops into plain Attention + IR ops; record the ones kept and why."""

    name: ClassVar[str] = "decompose-variants"
    keep: str = ""

    def run(self, graph: Graph) -> Graph:
        keep = set(filter(None, self.keep.split("+")))
        for node in graph.find("Attention"):
            if not node.op.spec.features_list() or kernel_computes(node.op.spec, keep):
                continue
            reason = decompose_node(graph, node)
            if reason is not None:
                graph.diagnostics.append({"pass": self.name, "node": node.name,
                                          "features": [f.kind for f in node.op.spec.features_list()], "reason": reason})
        return graph
