"""Tiny ONNX and IR models for the bad-input tests: static and symbolic shapes, corrupt files."""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from attncc import ir


def relu_onnx(path, shape=(2, 4), opset: int = 17, name: str = "relu") -> str:
    """A one-node ONNX model (Relu) with `shape` (ints are static dims, strings symbolic); returns the path."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], name, [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return str(path)


def attention_graph() -> ir.Graph:
    """Causal MQA over symbolic batch/seq."""
    g = ir.Graph("tiny")
    q = g.add_input("q", "float32", ("batch", 2, "seq", 8))
    k = g.add_input("k", "float32", ("batch", 1, "seq", 8))
    v = g.add_input("v", "float32", ("batch", 1, "seq", 8))
    spec = ir.AttentionSpec(2, 1, 8, mask=ir.MaskSpec(causal=True))
    g.set_outputs([g.add1(ir.Attention(spec=spec), [q, k, v], name="attn")])
    return g
