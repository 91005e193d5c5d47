"""fold-kv-cache: move a KV-cache concatenation feeding an Attention op into the op (spec.kv_cache).

Frontends that map torch's SDPA 1:1 give the op the full key/value: Concat([past, new]) along the
sequence axis, with the Concat results also returned as the model's new cache. This pass gives the
op past and new K/V separately and points the Concat's other readers at its present_key /
present_value outputs (the same concatenation). Besides letting backends write the cache in place,
it exposes the new key alone, so the RoPE applied to it can be absorbed (lift-rotary, fuse-attention).
Masks are unchanged: with a cache the op's masks still see Skv = past + new keys.
Skipped: ops with variant features, a cache already, or RoPE already absorbed (it would then rotate
only the new keys); key and value must concatenate the same past length.
Requires: nothing (after lift-attention). Guarantees: same outputs; no Concat(past, new) on the
sequence axis feeds both key and value of an Attention op.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..graph import Graph, Node, Value, upstream_nodes
from ._rewrite import producer_op, release
from .base import Pass, register_pass


def split_past(v: Value, seq_axis: int) -> tuple[Value, Value] | None:
    """(past, new) when `v` is Concat([past, new]) along `seq_axis` of a rank-4 tensor, else None."""
    cat = producer_op(v, "Concat")
    if cat is None or v.rank != 4 or cat.op.axis % 4 != seq_axis or len(cat.inputs) != 2:
        return None
    past, new = cat.inputs
    if not all(D.equal(past.shape[i], new.shape[i]) for i in range(4) if i != seq_axis):
        return None
    return past, new


def fold_node(graph: Graph, node: Node) -> Node:
    """Rewrite one Attention node to take its KV cache explicitly; returns the (possibly new) node."""
    spec = node.spec
    if spec.kv_cache or spec.rope is not None or spec.features_list():
        return node
    seq_axis = 2 if spec.layout == "bhsd" else 1
    named = node.op.named_inputs(node)
    ck, cv = split_past(named["key"], seq_axis), split_past(named["value"], seq_axis)
    if ck is None or cv is None or not D.equal(ck[0].shape[seq_axis], cv[0].shape[seq_axis]):
        return node
    full_key, full_value = named["key"], named["value"]
    if _read_upstream(graph, node, (full_key, full_value)):
        return node  # the op's own inputs read the full cache: its present outputs cannot replace it
    new_spec = spec.replace(kv_cache=True)
    named = dict(named, key=ck[1], value=cv[1], past_key=ck[0], past_value=cv[0])
    release(graph, node)
    outs = graph.add(type(node.op)(spec=new_spec, tiling=node.op.tiling), [named[n] for n in new_spec.input_names()],
                     name=node.name, source=node.source)
    graph.replace_all_uses(node.outputs[0], outs[0])
    # the concatenations themselves (the returned cache) now come out of the op
    graph.replace_all_uses(full_key, outs[1])
    graph.replace_all_uses(full_value, outs[2])
    return outs[0].producer


def _read_upstream(graph: Graph, node: Node, values: tuple[Value, ...]) -> bool:
    """Whether a node that `node` depends on reads one of `values`."""
    upstream = upstream_nodes(node.inputs)
    return any(any(x is v for x in n.inputs for v in values) for n in upstream.values())


@register_pass
@dataclass(frozen=True)
class FoldKVCache(Pass):
    """Give Attention ops fed by Concat(past, new) K/V an explicit KV cache (spec.kv_cache)."""

    name: ClassVar[str] = "fold-kv-cache"

    def run(self, graph: Graph) -> Graph:
        for node in graph.find("Attention"):
            fold_node(graph, node)
        graph.dead_code_elimination()
        return graph
