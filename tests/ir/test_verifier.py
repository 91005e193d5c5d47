"""The verifier rejects malformed graphs with a message naming the node and the broken rule."""
from __future__ import annotations

import numpy as np
import pytest

from attncc import ir
from attncc.ir import AttentionSpec, IRError, MaskSpec
from attncc.ir.graph import Node, Value
from attncc.ir.types import TensorType


def small_graph():
    g = ir.Graph()
    x = g.add_input("x", "float32", ("B", 4))
    w = g.add_constant(np.ones((4, 3), np.float32), "w")
    y = g.add1(ir.Linear(), [x, w], name="proj")
    g.set_outputs([y])
    return g


def expect(g, *fragments):
    with pytest.raises(IRError) as e:
        g.verify()
    msg = str(e.value)
    for f in fragments:
        assert f in msg, msg
    return msg


def test_valid_graph_passes():
    small_graph().verify()


def test_rule_output_type_must_match_inference():
    g = small_graph()
    g.nodes[-1].outputs[0].type = TensorType("float32", ("B", 5))
    expect(g, "node 'proj'", "typed float32[B, 5] but the op produces float32[B, 3]")


def test_rule_input_arity():
    g = small_graph()
    g.nodes[-1].inputs.append(g.inputs[0])
    expect(g, "node 'proj'", "has_bias=False but 3 inputs")


def test_rule_use_before_definition():
    g = small_graph()
    orphan = Node("ghost", ir.Unary("neg"), [g.inputs[0]], [])
    orphan.outputs = [Value("ghost", g.inputs[0].type, orphan)]
    g.nodes[-1].inputs[0] = Value("ghost2", g.inputs[0].type, orphan)
    expect(g, "node 'proj'", "used before it is defined")


def test_rule_duplicate_node_names():
    g = small_graph()
    x = g.inputs[0]
    n = Node("proj", ir.Unary("neg"), [x], [])
    n.outputs = [Value("neg_out", x.type, n)]
    g.nodes.append(n)
    expect(g, "node 'proj'", "used twice")


def test_rule_constant_without_data():
    g = small_graph()
    g.constants.clear()
    expect(g, "node 'w'", "has no data")


def test_rule_constant_data_shape_mismatch():
    g = small_graph()
    g.constants["w"] = np.ones((4, 2), np.float32)
    expect(g, "node 'w'", "differs from the op's")


def test_rule_graph_output_defined():
    g = small_graph()
    g.outputs = [Value("nowhere", TensorType("float32", (1,)))]
    expect(g, "graph output 'nowhere' is not defined")


def test_rule_matmul_contraction():
    g = ir.Graph()
    a = g.add_input("a", "float32", (2, 3))
    b = g.add_input("b", "float32", (4, 5))
    with pytest.raises(IRError, match="contraction dims differ"):
        g.add1(ir.MatMul(), [a, b], name="mm")


def test_rule_binary_dtypes_must_agree():
    g = ir.Graph()
    a = g.add_input("a", "float32", (2,))
    b = g.add_input("b", "float16", (2,))
    with pytest.raises(IRError, match="node 'bad'.*dtypes differ"):
        g.add1(ir.Binary("add"), [a, b], name="bad")


def test_rule_attention_heads_must_match_spec():
    g = ir.Graph()
    q = g.add_input("q", "float32", (1, 4, 8, 16))
    k = g.add_input("k", "float32", (1, 3, 8, 16))
    with pytest.raises(IRError, match="node 'attn'.*key has 3 heads, spec says 2"):
        g.add1(ir.Attention(spec=AttentionSpec(4, 2, 16)), [q, k, k], name="attn")


def test_rule_attention_mask_must_broadcast():
    g = ir.Graph()
    q = g.add_input("q", "float32", (1, 2, 8, 16))
    m = g.add_input("m", "bool", (1, 1, 8, 7))
    with pytest.raises(IRError, match="mask .* does not broadcast"):
        g.add1(ir.Attention(spec=AttentionSpec(2, 2, 16, mask=MaskSpec(input="bool"))), [q, q, q, m], name="attn")


def test_rule_transpose_perm():
    g = ir.Graph()
    x = g.add_input("x", "float32", (2, 3))
    with pytest.raises(IRError, match="not a permutation"):
        g.add1(ir.Transpose((0, 0)), [x])


def test_rule_reshape_element_count():
    g = ir.Graph()
    x = g.add_input("x", "float32", (2, 3))
    with pytest.raises(IRError, match="changes the element count"):
        g.add1(ir.Reshape((4, 2)), [x])


def test_rule_cycle_detected():
    g = ir.Graph()
    x = g.add_input("x", "float32", (2,))
    a = g.add1(ir.Unary("neg"), [x], name="a")
    b = g.add1(ir.Unary("neg"), [a], name="b")
    g.nodes[0].inputs[0] = b
    g.set_outputs([b])
    with pytest.raises(IRError, match="cycle"):
        g.verify()


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="num_heads .* divisible by num_kv_heads"):
        AttentionSpec(6, 4, 8)
    with pytest.raises(ValueError, match="mask.window_left"):
        MaskSpec(window_left=-1)
    with pytest.raises(ValueError, match="softcap"):
        AttentionSpec(2, 2, 8, softcap=-1.0)
    with pytest.raises(ValueError, match="rope.rotary_dim"):
        ir.RopeSpec("rotate_half", 3)
