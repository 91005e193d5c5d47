"""Tensor parallelism for MLA (DeepSeek-V2/V3 latent attention): heads over TP ranks, latent cache replicated."""
from __future__ import annotations

from ..graph import Graph
from .shard_layout import WeightSlice


def plan_mla(graph: Graph, tp: int, slices: dict[str, WeightSlice]) -> list[str]:
    """Add the head slices of every MLA attention's up-projections to `slices`; returns notes."""
    return []
