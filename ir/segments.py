"""Cut a rank graph at its collective ops: compute segments (plain graphs a backend builds) between
collective steps (run by a process group), in the one order every rank of a sharded program shares.

A sharded program's ranks must reach their collectives in the same order (a mismatch is a deadlock
on a real process group), so the order is the graph's deterministic topological order; constants are
copied into every segment that reads them (weights are bound per segment, never sent between steps).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from .errors import IRError
from .graph import Graph, Node, Value


@dataclass
class ComputeSegment:
    """A collective-free part of a rank graph; `graph` reads `inputs` and writes `outputs` (value names
    of the rank graph: graph inputs, earlier segments' or collectives' outputs)."""

    graph: Graph
    inputs: list[str]
    outputs: list[str]


@dataclass
class CollectiveStep:
    """One collective node of the rank graph: reads `inputs`, writes `outputs` (value names)."""

    node: Node
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def _is_collective(node: Node) -> bool:
    return bool(getattr(node.op, "is_collective", False))


def split_at_collectives(graph: Graph) -> list[ComputeSegment | CollectiveStep]:
    """The steps of `graph` in execution order: ComputeSegments (never empty) and CollectiveSteps.

    A compute node runs in the first segment after every collective it depends on; its outputs are a
    segment output when a later step or the graph's outputs read them."""
    order = graph.topological()
    collectives = [n for n in order if _is_collective(n)]
    position = {id(c): i for i, c in enumerate(collectives)}
    # a compute node runs in bucket b = the number of collectives it (transitively) waits for, counted
    # as "after collective i" = i + 1; the i-th collective runs between buckets i and i + 1
    bucket: dict[int, int] = {}
    buckets: list[list[Node]] = [[] for _ in range(len(collectives) + 1)]
    for n in order:
        if _is_collective(n) or n.op.op_name == "Constant":
            continue                                    # constants are copied into each segment that reads them
        b = 0
        for v in n.inputs:
            if v is None or v.producer is None:
                continue
            p = v.producer
            b = max(b, position[id(p)] + 1 if _is_collective(p) else bucket.get(id(p), 0))
        bucket[id(n)] = b
        buckets[b].append(n)
    for c in collectives:                               # a collective must not wait for a later bucket
        need = max((bucket.get(id(v.producer), 0) for v in c.inputs if v is not None and v.producer is not None
                    and not _is_collective(v.producer)), default=0)
        if need > position[id(c)]:
            raise IRError(f"collective '{c.name}' reads a value computed after a later collective: the rank "
                          "graph has no single step order")
    consumers_after: dict[str, int] = {}                # value name -> last step index that reads it
    steps: list[ComputeSegment | CollectiveStep] = []
    graph_outputs = {v.name for v in graph.outputs}
    plan: list[tuple[str, object]] = []
    for i in range(len(collectives) + 1):
        if buckets[i]:
            plan.append(("compute", buckets[i]))
        if i < len(collectives):
            plan.append(("collective", collectives[i]))
    for idx, (kind, item) in enumerate(plan):
        nodes = item if kind == "compute" else [item]
        for n in nodes:
            for v in n.inputs:
                if v is not None:
                    consumers_after[v.name] = max(consumers_after.get(v.name, -1), idx)
    for idx, (kind, item) in enumerate(plan):
        if kind == "collective":
            steps.append(CollectiveStep(item, [v.name for v in item.inputs if v is not None],
                                        [v.name for v in item.outputs]))
            continue
        segment = _segment(graph, item, idx, consumers_after, graph_outputs, len(steps))
        if segment.outputs:                             # a segment whose results nobody reads is dropped
            steps.append(segment)
    return steps


def _segment(graph: Graph, nodes: list[Node], idx: int, consumers_after: dict[str, int], graph_outputs: set[str],
             number: int) -> ComputeSegment:
    """A standalone graph of `nodes` (plus the constants they read) with inputs for every value from outside."""
    # named by position only: segment k of every rank of a stage prints alike (one cached build)
    g = Graph(f"segment{number}", metadata={k: v for k, v in graph.metadata.items() if k != "parallel"})
    vmap: dict[int, Value] = {}
    inputs: list[str] = []

    def value_of(v: Value) -> Value:
        """The segment's value for `v`: its own node's output, a copied constant, or a new segment input."""
        if id(v) in vmap:
            return vmap[id(v)]
        if v.producer is not None and v.producer.op.op_name == "Constant":
            key = v.producer.op.key
            # a rank's weight block is named <weight>_r<block>; the segment names it <weight>, so the
            # segments of identical shards print alike and share one cached build (weights bind at load)
            plain = re.sub(r"_r\d+$", "", key)
            name = plain if plain not in graph.constants and plain not in g._names else key
            g.constants[name] = graph.constants[key]
            g._names.add(name)
            node = Node(name, dataclasses.replace(v.producer.op, key=name), [], [], v.producer.source)
            node.outputs = [Value(name, v.type, node)]
            g.nodes.append(node)
            vmap[id(v)] = node.outputs[0]
            return vmap[id(v)]
        nv = Value(v.name, v.type)
        g._names.add(v.name)
        g.inputs.append(nv)
        inputs.append(v.name)
        vmap[id(v)] = nv
        return nv

    for n in nodes:
        ins = [None if v is None else value_of(v) for v in n.inputs]
        nn = Node(n.name, n.op, ins, [], n.source)
        g._names.add(n.name)
        for v in n.outputs:
            nv = Value(v.name, v.type, nn)
            g._names.add(v.name)
            vmap[id(v)] = nv
            nn.outputs.append(nv)
        g.nodes.append(nn)
    outputs = [v.name for n in nodes for v in n.outputs
               if v.name in graph_outputs or consumers_after.get(v.name, -1) > idx]
    by_name = {v.name: v for n in g.nodes for v in n.outputs}
    g.set_outputs([by_name[o] for o in outputs])
    g.dead_code_elimination()
    return ComputeSegment(g, inputs, outputs)
