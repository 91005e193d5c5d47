"""Which `x ** c` compile to multiplies, sqrt or a reciprocal instead of a pow call per element: one decision
read by the backend core (which builder a Pow gets) and by the cost report (which kernels run libm's pow)."""
from __future__ import annotations

from ..graph import Graph, Node

# the constant exponents torch's CPU pow kernel special-cases (aten/src/ATen/native/cpu/PowKernel.cpp: 2, 3, 0.5,
# -0.5, -1, -2) plus 0, 1 and 4; integer bases only the non-negative ones (no reciprocal, no root)
FAST_POW_EXPONENTS = frozenset({0.0, 1.0, 2.0, 3.0, 4.0, 0.5, -0.5, -1.0, -2.0})
INT_FAST_POW_EXPONENTS = frozenset({0.0, 1.0, 2.0, 3.0, 4.0})


def fast_pow_exponent(exponent: float | None, base_dtype: str) -> bool:
    """True when a Pow of a `base_dtype` base by the constant `exponent` compiles without a pow call."""
    if exponent is None or base_dtype == "bool":
        return False
    if base_dtype.startswith(("int", "uint")):
        return exponent in INT_FAST_POW_EXPONENTS
    return exponent in FAST_POW_EXPONENTS


def constant_exponent(graph: Graph, node: Node) -> float | None:
    """The exponent of a Binary pow when it is a one-element Constant (0-d or shape (1,)), else None."""
    p = node.inputs[1].producer if len(node.inputs) > 1 and node.inputs[1] is not None else None
    if p is None or p.op.op_name != "Constant":
        return None
    arr = graph.constants.get(p.op.key)
    return float(arr.reshape(-1)[0]) if arr is not None and arr.size == 1 else None


def calls_pow(graph: Graph | None, node: Node) -> bool:
    """Does this node run a pow call per element? (Binary pow whose exponent is not a fast constant; without the
    graph, any Binary pow.)"""
    if node.op.op_name != "Binary" or getattr(node.op, "fn", "") != "pow":
        return False
    if graph is None:
        return True
    return not fast_pow_exponent(constant_exponent(graph, node), node.inputs[0].dtype)
