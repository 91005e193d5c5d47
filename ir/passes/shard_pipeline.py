"""Pipeline parallelism: layers over pp stages, balanced by attention layers, joined by Send/Recv.

Stage k starts between attention layer k*L/pp - 1 and k*L/pp, at the point where the fewest bytes
cross (the residual stream after the previous layer's last add; values every layer reads, such as
RoPE tables computed once from position ids, cross too and are forwarded stage to stage).
"""
from __future__ import annotations

from ..errors import IRError
from ..graph import Graph, Node, Value
from ..ops import Recv, Send
from ..types import DTYPE_BYTES
from .shard_attention import divisors


def _bytes(v: Value) -> int:
    n = 1
    for d in v.shape:
        n *= d if isinstance(d, int) else 1 << 20          # a symbolic dim counts as large
    return n * DTYPE_BYTES[v.dtype]


def split_stages(graph: Graph, pp: int) -> tuple[list[Graph], list[tuple[int, int]]]:
    """The pp stage graphs and, for each output of `graph`, (stage, index among that stage's outputs)."""
    if pp == 1:
        return [graph], [(0, j) for j in range(len(graph.outputs))]
    order = [n for n in graph.topological() if n.op.op_name != "Constant"]
    layers = [i for i, n in enumerate(order) if n.op.op_name in ("Attention", "FusedAttention")]
    if not layers or len(layers) % pp:
        raise IRError(f"shard: pp={pp} does not divide the {len(layers)} attention layers of graph '{graph.name}'; "
                      f"legal pp sizes: {divisors(len(layers)) if layers else [1]}")
    per = len(layers) // pp
    pos = {id(n): i for i, n in enumerate(order)}
    last_use: dict[int, int] = {}
    for i, n in enumerate(order):
        for v in n.inputs:
            if v is not None and v.producer is not None and v.producer.op.op_name != "Constant":
                last_use[id(v)] = i
    cuts = [0]
    for k in range(1, pp):
        lo, hi = layers[k * per - 1] + 1, layers[k * per]
        best = min(range(lo, hi + 1), key=lambda p: (_crossing_bytes(order, p, pos, last_use), -p))
        cuts.append(best)
    cuts.append(len(order))
    crossing = [[]] + [_crossing(order, p, pos, last_use) for p in cuts[1:-1]] + [[]]
    stages, where = [], {}
    for s in range(pp):
        g, outs = _stage_graph(graph, order[cuts[s]:cuts[s + 1]], crossing[s], crossing[s + 1], s)
        for j, v in enumerate(outs):
            where.setdefault(id(v), (s, j))
        stages.append(g)
    sources = []
    for v in graph.outputs:
        if id(v) not in where:
            raise IRError(f"shard: graph output '{v.name}' is not produced by any pipeline stage "
                          "(a constant or input returned as an output is not supported with pp > 1)")
        sources.append(where[id(v)])
    return stages, sources


def _crossing(order: list[Node], p: int, pos, last_use) -> list[Value]:
    """Values made before position p and read at or after it (stage boundary traffic), in order made."""
    return [v for n in order[:p] for v in n.outputs if last_use.get(id(v), -1) >= p]


def _crossing_bytes(order, p, pos, last_use) -> int:
    return sum(_bytes(v) for v in _crossing(order, p, pos, last_use))


def _stage_graph(graph: Graph, nodes: list[Node], incoming: list[Value], outgoing: list[Value], stage: int):
    g = Graph(f"{graph.name}_stage{stage}", metadata=dict(graph.metadata))
    env: dict[int, Value] = {}
    used = {id(v) for n in nodes for v in n.inputs if v is not None}
    for v in graph.inputs:
        if id(v) in used:
            env[id(v)] = g.add_input(v.name, v.dtype, v.shape)
    for v in incoming:
        env[id(v)] = g.add1(Recv(stage - 1, tuple(v.shape), v.dtype), [], name=f"recv_{v.name}")
    for n in nodes:
        ins = []
        for v in n.inputs:
            if v is not None and id(v) not in env:
                p = v.producer
                if p is None or p.op.op_name != "Constant":
                    raise IRError(f"shard: stage {stage} reads '{v.name}' that no earlier stage sends", n)
                env[id(v)] = g.add_constant(graph.constants[p.op.key], name=p.op.key)
            ins.append(None if v is None else env[id(v)])
        for old, new in zip(n.outputs, g.add(n.op, ins, name=n.name, source=n.source)):
            env[id(old)] = new
    outs = [v for v in graph.outputs if id(v) in env and v.producer is not None
            and v.producer.op.op_name != "Constant" and id(v.producer) in {id(n) for n in nodes}]
    g.outputs = [env[id(v)] for v in outs]
    for v in outgoing:
        g.outputs.append(g.add1(Send(stage + 1), [env[id(v)]], name=f"send_{v.name}"))
    return g, outs
