"""dce: remove nodes that reach no graph output and constants nobody reads.

Requires: nothing. Guarantees: every node is live; graph outputs unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..graph import Graph
from .base import Pass, register_pass


@register_pass
@dataclass(frozen=True)
class DeadCodeElimination(Pass):
    """Drop dead nodes and unused constants."""

    name: ClassVar[str] = "dce"

    def run(self, graph: Graph) -> Graph:
        graph.dead_code_elimination()
        return graph
