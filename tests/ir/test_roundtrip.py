"""Printer/parser, JSON and spec round-trips; symbolic dims; DCE and topological order."""
from __future__ import annotations

import numpy as np

from attncc import ir
from attncc.ir import AttentionSpec, MaskSpec, RopeSpec, dims


def gqa_graph():
    g = ir.Graph("block")
    x = g.add_input("x", "float32", ("batch", "seq", 32))
    pk = g.add_input("past_k", "float32", ("batch", 2, "past", 8))
    pv = g.add_input("past_v", "float32", ("batch", 2, "past", 8))
    cos = g.add_input("cos", "float32", (1, "seq", 4))
    sin = g.add_input("sin", "float32", (1, "seq", 4))
    rng = np.random.default_rng(1)

    def proj(name, out, heads):
        w = g.add_constant(rng.standard_normal((32, out)).astype(np.float32), name)
        y = g.add1(ir.Linear(), [x, w])
        y = g.add1(ir.Reshape(("batch", "seq", heads, 8)), [y])
        return g.add1(ir.Transpose((0, 2, 1, 3)), [y])

    q, k, v = proj("wq", 32, 4), proj("wk", 16, 2), proj("wv", 16, 2)
    spec = AttentionSpec(4, 2, 8, rope=RopeSpec("rotate_half", 8), kv_cache=True,
                         mask=MaskSpec(causal=True, alignment="bottom_right"))
    out, pk2, pv2 = g.add(ir.Attention(spec=spec), [q, k, v, pk, pv, cos, sin], name="attn")
    g.set_outputs([out, pk2, pv2])
    g.verify()
    return g


def inputs(b=2, s=3, past=4):
    rng = np.random.default_rng(2)
    ang = rng.standard_normal((1, s, 4))
    return [rng.standard_normal((b, s, 32)).astype(np.float32), rng.standard_normal((b, 2, past, 8)).astype(np.float32),
            rng.standard_normal((b, 2, past, 8)).astype(np.float32), np.cos(ang).astype(np.float32),
            np.sin(ang).astype(np.float32)]


def test_symbolic_dims_propagate():
    g = gqa_graph()
    out, pk, _ = g.outputs
    assert out.shape == ("batch", 4, "seq", 8)
    assert pk.shape == ("batch", 2, "past+seq", 8)


def test_print_parse_roundtrip_is_identical_and_runs_the_same():
    g = gqa_graph()
    text = ir.print_ir(g)
    g2 = ir.parse_ir(text, constants=g.constants)
    assert ir.print_ir(g2) == text
    for a, b in zip(ir.run_graph(g, inputs()), ir.run_graph(g2, inputs())):
        np.testing.assert_array_equal(a, b)


def test_json_roundtrip():
    g = gqa_graph()
    g.diagnostics.append({"kind": "note", "node": "attn"})
    g2 = ir.graph_from_json(ir.graph_to_json(g))
    assert ir.print_ir(g2) == ir.print_ir(g)
    assert g2.diagnostics == g.diagnostics
    for a, b in zip(ir.run_graph(g, inputs(1, 5, 2)), ir.run_graph(g2, inputs(1, 5, 2))):
        np.testing.assert_array_equal(a, b)


def test_spec_dict_roundtrip_and_variant_labels():
    spec = AttentionSpec(32, 8, 128, v_head_dim=64, scale=0.05, softcap=30.0, rope=RopeSpec("interleaved", 64),
                         mask=MaskSpec(causal=True, window_left=255, input="additive"), kv_cache=True)
    assert AttentionSpec.from_dict(spec.to_dict()) == spec
    assert spec.variant == "gqa"
    assert AttentionSpec(8, 8, 64).variant == "mha"
    assert AttentionSpec(8, 1, 64).variant == "mqa"
    assert "window(255,None)" in spec.summary() and "softcap(30)" in spec.summary()


def test_attention_ops_and_dce():
    g = gqa_graph()
    assert [n.name for n in g.attention_ops()] == ["attn"]
    assert g.attention_ops()[0].spec.num_kv_heads == 2
    dead = g.add1(ir.Unary("neg"), [g.inputs[0]], name="dead")
    assert dead.producer in g.nodes
    removed = g.dead_code_elimination()
    assert removed == 1 and all(n.name != "dead" for n in g.nodes)


def test_dims_arithmetic():
    assert dims.add("seq", "past") == dims.add("past", "seq") == "past+seq"
    assert dims.mul("batch", 4) == "4*batch"
    assert dims.floordiv(dims.mul("batch", "seq"), "seq") == "batch"
    assert dims.evaluate("past+seq", {"past": 3, "seq": 4}) == 7
    assert dims.add("seq", -1) == "seq-1"


def test_interpreter_binds_symbolic_dims_and_rejects_bad_shapes():
    g = gqa_graph()
    ir.run_graph(g, inputs(3, 7, 1))
    bad = inputs()
    bad[1] = bad[1][:, :1]
    try:
        ir.run_graph(g, bad)
    except ir.IRError as e:
        assert "past_k" in str(e)
    else:
        raise AssertionError("shape mismatch not detected")
