"""Collective time: latency + bytes x bus factor / (line rate x message-size efficiency).

Bus factors are nccl-tests' (doc/PERFORMANCE.md): busbw = algbw x 2(n-1)/n for all-reduce and x (n-1)/n for
all-gather, reduce-scatter and all-to-all; send/recv moves its bytes once. `nbytes` is nccl-tests' "size":
the all-reduce buffer, the all-gather output, the reduce-scatter input, the bytes each rank sends in total in
an all-to-all, the message of a send/recv. Latency follows NCCL's ring model (src/graph/tuning.cc): a base
plus one hop per ring step, inter-node steps at the network's hop latency; an all-to-all or send/recv is one
concurrent exchange. A group larger than a node runs at the inter-node link's rate (one NIC per GPU).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .systems import System, SystemSpecError, get_system

# op spellings accepted -> canonical name (IR op class names of ir/ops/collectives.py included)
OPS = {"all_reduce": "all_reduce", "allreduce": "all_reduce", "AllReduce": "all_reduce",
       "all_gather": "all_gather", "allgather": "all_gather", "AllGather": "all_gather",
       "reduce_scatter": "reduce_scatter", "reducescatter": "reduce_scatter", "ReduceScatter": "reduce_scatter",
       "all_to_all": "all_to_all", "alltoall": "all_to_all", "AllToAll": "all_to_all",
       "send_recv": "send_recv", "send": "send_recv", "recv": "send_recv", "Send": "send_recv", "Recv": "send_recv"}


@dataclass
class CollectiveCost:
    """One collective on one group: what it moves and how long it takes."""

    op: str
    bytes: float
    ranks: int
    link: str
    time_s: float
    latency_s: float = 0.0
    busbw_bytes_per_s: float = 0.0
    count: int = 1          # how many times per step (e.g. once per layer)
    where: str = ""         # what it is for ("attention output, layer", "MoE dispatch")

    @property
    def total_s(self) -> float:
        return self.time_s * self.count

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "bytes": self.bytes, "ranks": self.ranks, "link": self.link, "time_s": self.time_s,
                "count": self.count, "total_s": self.total_s, "latency_s": self.latency_s,
                "busbw_bytes_per_s": self.busbw_bytes_per_s, "where": self.where}


def bus_factor(op: str, ranks: int) -> float:
    """nccl-tests' busbw/algbw factor of `op` on `ranks` ranks."""
    op = canonical_op(op)
    n = ranks
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


def canonical_op(op: str) -> str:
    if op not in OPS:
        raise ValueError(f"unknown collective {op!r}; supported: all_reduce, all_gather, reduce_scatter, all_to_all, send_recv")
    return OPS[op]


def _steps(op: str, ranks: int, nodes: int) -> tuple[int, int]:
    """(intra-node hops, inter-node hops) in NCCL's ring latency model."""
    if op == "all_reduce":
        total, inter = 2 * (ranks - 1), 2 * (nodes - 1)
    elif op in ("all_gather", "reduce_scatter"):
        total, inter = ranks - 1, nodes - 1
    else:  # all-to-all / send-recv: one concurrent exchange
        total, inter = 1, 1 if nodes > 1 else 0
    return total - inter, inter


def collective_time(op: str, nbytes: float, ranks: int, system: str | System = "dgx-h100",
                    spans_nodes: bool | None = None) -> CollectiveCost:
    """Time of one collective `op` of `nbytes` (nccl-tests size) over `ranks` ranks of `system`.

    spans_nodes: whether the group crosses nodes (default: when `ranks` exceeds the devices per node)."""
    op = canonical_op(op)
    sysm = get_system(system)
    if not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"collective {op}: ranks must be a positive integer, got {ranks!r}")
    if nbytes < 0:
        raise ValueError(f"collective {op}: negative size {nbytes}")
    if ranks == 1 or nbytes == 0:
        return CollectiveCost(op, float(nbytes), ranks, "none", 0.0)
    crosses = ranks > sysm.devices_per_node if spans_nodes is None else spans_nodes
    link = sysm.link_for(ranks, crosses)
    nodes = max(1, math.ceil(ranks / sysm.devices_per_node)) if crosses else 1
    intra_steps, inter_steps = _steps(op, ranks, nodes)
    intra = sysm.intra_node
    latency = link.latency_base_s + intra_steps * intra.latency_per_step_s + inter_steps * link.latency_per_step_s
    factor = bus_factor(op, ranks)
    eff = link.efficiency_for(op).at(nbytes)
    transfer = nbytes * factor / (link.bandwidth_bytes_per_s * eff)
    time = latency + transfer
    return CollectiveCost(op, float(nbytes), ranks, link.name, time, latency, nbytes * factor / time)


def busbw(op: str, nbytes: float, ranks: int, system: str | System) -> float:
    """Predicted nccl-tests bus bandwidth (bytes/s) of `op`: size x bus factor / time."""
    return collective_time(op, nbytes, ranks, system).busbw_bytes_per_s


__all__ = ["CollectiveCost", "OPS", "bus_factor", "canonical_op", "collective_time", "busbw", "SystemSpecError"]
