"""Errors raised by the IR; each names the node (and its source location) at fault."""
from __future__ import annotations

from typing import Any


class IRError(ValueError):
    """A malformed graph, op or attribute. The message names the node and the broken rule."""

    def __init__(self, message: str, node: Any = None):
        where = ""
        if node is not None:
            name = getattr(node, "name", None)
            op = getattr(getattr(node, "op", None), "op_name", None)
            source = getattr(node, "source", None)
            where = f"node '{name}'" + (f" ({op})" if op else "") + (f" from {source}" if source else "") + ": "
        super().__init__(where + message)
        self.node = node


def require(condition: bool, node: Any, message: str) -> None:
    """Raise IRError naming `node` when `condition` is false."""
    if not condition:
        raise IRError(message, node)
