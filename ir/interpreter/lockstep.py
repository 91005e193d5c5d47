"""Lock-step execution of a sharded program: all rank graphs in one process, collectives in numpy.

Each rank runs until it reaches a collective op. A group collective completes when every rank of
its group stands at one (they must agree on the op and its attributes: a mismatch is the deadlock
or wrong-result a real NCCL run would give, reported here by name). Send is buffered (it never
blocks); Recv waits for the matching Send, first in first out per (sender, receiver).
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from ..errors import IRError


def _reduce(op_name: str, how: str, arrays: list[np.ndarray]) -> np.ndarray:
    fn = {"sum": np.add, "max": np.maximum, "min": np.minimum}[how]
    # sum in float64 like the reference kernels, then back to the tensor dtype
    acc = arrays[0].astype(np.float64) if arrays[0].dtype.kind == "f" else arrays[0]
    for a in arrays[1:]:
        acc = fn(acc, a.astype(acc.dtype))
    return acc.astype(arrays[0].dtype)


def group_collective(op, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The outputs (one per group member, in group order) of collective `op` over member inputs `arrays`."""
    n = len(arrays)
    name = op.op_name
    if name == "AllReduce":
        out = _reduce(name, op.reduce, arrays)
        return [out.copy() for _ in range(n)]
    if name == "AllGather":
        out = np.concatenate(arrays, axis=op.axis)
        return [out.copy() for _ in range(n)]
    if name == "ReduceScatter":
        return [np.ascontiguousarray(b) for b in np.split(_reduce(name, op.reduce, arrays), n, axis=op.axis)]
    if name == "AllToAll":
        blocks = [np.split(a, n, axis=op.split_axis) for a in arrays]
        return [np.concatenate([blocks[src][dst] for src in range(n)], axis=op.concat_axis) for dst in range(n)]
    raise IRError(f"no lock-step rule for collective {name}")


def _check_outputs(node, outs) -> None:
    for v, a in zip(node.outputs, outs):
        if len(a.shape) != v.rank or any(isinstance(d, int) and d != s for d, s in zip(v.shape, a.shape)):
            raise IRError(f"collective produced shape {tuple(a.shape)} but '{v.name}' is typed {v.type}", node)


def run_ranks(program, inputs: Sequence[np.ndarray] | dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run every rank graph of `program` (a ShardedProgram) in lock step on the unsharded graph's
    inputs (positional or by name); returns the unsharded graph's outputs."""
    from . import graph_steps

    if not isinstance(inputs, dict):
        if len(inputs) != len(program.input_names):
            raise IRError(f"the sharded program takes {len(program.input_names)} inputs "
                          f"({program.input_names}), got {len(inputs)}")
        inputs = dict(zip(program.input_names, inputs))
    world = program.world_size
    steps = [graph_steps(g, program.rank_inputs(r, inputs)) for r, g in enumerate(program.rank_graphs)]
    waiting: dict[int, tuple] = {}          # rank -> (node, args) it is paused at
    results: dict[int, list[np.ndarray]] = {}
    mailbox: dict[tuple[int, int], deque] = {}

    def advance(rank: int, sent) -> None:
        try:
            waiting[rank] = next(steps[rank]) if sent is None else steps[rank].send(sent)
        except StopIteration as done:
            waiting.pop(rank, None)
            results[rank] = done.value

    for r in range(world):
        advance(r, None)
    while waiting:
        progressed = False
        for rank in sorted(waiting):
            if rank not in waiting:
                continue
            node, args = waiting[rank]
            name = node.op.op_name
            if name == "Send":
                peer = program.peer(rank, node.op.peer_stage)
                mailbox.setdefault((rank, peer), deque()).append(args[0])
                advance(rank, [args[0]])
                progressed = True
            elif name == "Recv":
                box = mailbox.get((program.peer(rank, node.op.peer_stage), rank))
                if box:
                    out = [box.popleft()]
                    _check_outputs(node, out)
                    advance(rank, out)
                    progressed = True
            else:
                members = program.group_ranks(rank, node.op.group)
                if len(members) != node.op.ranks:
                    raise IRError(f"{name} says {node.op.ranks} ranks but group '{node.op.group}' of rank {rank} "
                                  f"has {len(members)}", node)
                # a member paused at another group's collective gets there later (separate communicators)
                if not all(m in waiting and getattr(waiting[m][0].op, "group", None) == node.op.group
                           for m in members):
                    continue
                for m in members:
                    other = waiting[m][0]
                    if other.op != node.op:
                        raise IRError(f"ranks {rank} and {m} reach different collectives: {node.op} at '{node.name}' "
                                      f"vs {other.op} at '{other.name}'", node)
                outs = group_collective(node.op, [waiting[m][1][0] for m in members])
                for m, out in zip(members, outs):
                    _check_outputs(waiting[m][0], [out])
                    advance(m, [out])
                progressed = True
        if not progressed:
            where = "; ".join(f"rank {r} at '{n.name}' ({n.op.op_name})" for r, (n, _) in sorted(waiting.items()))
            raise IRError(f"sharded program deadlocks: {where}")
    outs = [results[r][j] for r, j in program.output_sources]
    for i, (axis, shards) in program.output_shards.items():
        blocks, covered = [], 0
        for r, j, start, stop in sorted(shards, key=lambda s: s[2]):
            if start == covered:            # replicated blocks (KV heads on several ranks) are taken once
                blocks.append(results[r][j])
                covered = stop
        outs[i] = np.concatenate(blocks, axis=axis)
    return outs
