"""attncc.ir: the attention IR (ops, graph, verifier, printer/parser, JSON, interpreter, passes).

Imports neither torch nor tvm (layering rule).
"""
from . import dims
from .errors import IRError, require
from .graph import Graph, Node, Value
from .interpreter import run_graph
from .ops import *  # noqa: F401,F403  (registers every op)
from .ops import __all__ as _ops_all
from .printer import parse_ir, print_ir
from .serialize import graph_from_dict, graph_from_json, graph_to_dict, graph_to_json
from .types import DTYPES, TensorType

__all__ = ["dims", "IRError", "require", "Graph", "Node", "Value", "run_graph", "parse_ir", "print_ir",
           "graph_from_dict", "graph_from_json", "graph_to_dict", "graph_to_json", "DTYPES", "TensorType", *_ops_all]
