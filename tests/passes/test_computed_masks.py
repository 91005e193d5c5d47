"""canonicalize-attention on masks computed from dim sizes (aranges as exclusive CumSum of ones, as the
torch frontend emits for dynamic seq): positional patterns become MaskSpec fields, anything else —
a non-positional pattern, a pattern that changes with the size, a mask reading input data — stays a
mask input. Outputs are checked against the interpreter on the unoptimized graph at two sizes."""
from __future__ import annotations

import numpy as np
import pytest

from attncc.ir import Attention, AttentionSpec, Binary, Expand, Graph, MaskSpec, Reshape, run_graph
from attncc.ir.ops import CumSum, Reduce
from attncc.ir.passes import run_pipeline


def _positions(g: Graph):
    """(query rows [S,1], key columns [1,S], S as a scalar) built from ones, as HF does for dynamic seq."""
    ones = g.add1(Expand(("S",)), [g.add_constant(np.ones(1, np.int64), "one")], name="ones")
    idx = g.add1(CumSum(axis=0, exclusive=True), [ones], name="arange")
    size = g.add1(Reduce(fn="sum", axes=(0,)), [ones], name="size")
    return g.add1(Reshape(("S", 1)), [idx], name="rows"), g.add1(Reshape((1, "S")), [idx], name="cols"), size


def _graph(build_keep) -> Graph:
    g = Graph("computed_mask")
    q, k, v = (g.add_input(n, "float32", (1, 4, "S", 8)) for n in "qkv")
    rows, cols, size = _positions(g)
    keep = build_keep(g, rows, cols, size)
    spec = AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=8, mask=MaskSpec(input="bool"))
    g.set_outputs([g.add1(Attention(spec=spec), [q, k, v, keep], name="attn")])
    return g


def _causal(g, rows, cols, size):
    return g.add1(Binary("le"), [cols, rows], name="keep")


def _window(g, rows, cols, size):  # causal and at most 2 keys back: cols > rows - 3
    three = g.add_constant(np.array([3], np.int64), "three")
    back = g.add1(Binary("sub"), [rows, three], name="back")
    near = g.add1(Binary("gt"), [cols, back], name="near")
    return g.add1(Binary("and"), [_causal(g, rows, cols, size), near], name="keep_w")


def _no_diagonal(g, rows, cols, size):  # every key but the query's own position: not causal/window
    return g.add1(Binary("ne"), [cols, rows], name="keep_nd")


def _half_seq_window(g, rows, cols, size):  # a window of S/2 keys: a valid window at each size, never the same
    two = g.add_constant(np.array([2], np.int64), "two")
    c2, r2 = g.add1(Binary("mul"), [cols, two]), g.add1(Binary("mul"), [rows, two])
    near = g.add1(Binary("gt"), [c2, g.add1(Binary("sub"), [r2, size])], name="near")
    return g.add1(Binary("and"), [_causal(g, rows, cols, size), near], name="keep_h")


def _optimized(build_keep):
    g = _graph(build_keep)
    return g, run_pipeline(g, "canonicalize,constant-fold,canonicalize-attention,dce")


def _assert_same_outputs(before: Graph, after: Graph) -> None:
    rng = np.random.default_rng(0)
    for s in (4, 7):
        qkv = {n: rng.standard_normal((1, 4, s, 8)).astype(np.float32) for n in "qkv"}
        np.testing.assert_allclose(run_graph(after, qkv)[0], run_graph(before, qkv)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("build_keep, window_left", [(_causal, None), (_window, 2)])
def test_positional_mask_computed_from_dims_becomes_spec_fields(build_keep, window_left):
    before, after = _optimized(build_keep)
    (node,) = after.attention_ops()
    assert node.spec.mask == MaskSpec(causal=True, window_left=window_left)
    assert len(node.inputs) == 3 and not after.find("CumSum")  # the mask computation is gone
    _assert_same_outputs(before, after)


@pytest.mark.parametrize("build_keep", [_no_diagonal, _half_seq_window])
def test_computed_mask_that_is_not_one_positional_pattern_stays_an_input(build_keep):
    before, after = _optimized(build_keep)
    (node,) = after.attention_ops()
    assert node.spec.mask.input == "bool" and not node.spec.mask.causal and len(node.inputs) == 4
    _assert_same_outputs(before, after)


def test_mask_reading_input_data_stays_an_input():
    """A causal-looking mask that compares against a graph input is data, not shape: never folded."""
    g = Graph("data_mask")
    q, k, v = (g.add_input(n, "float32", (1, 4, "S", 8)) for n in "qkv")
    pos = g.add_input("pos", "int64", ("S",))  # positions fed by the caller (could be anything)
    rows, cols = g.add1(Reshape(("S", 1)), [pos]), g.add1(Reshape((1, "S")), [pos])
    keep = g.add1(Binary("le"), [cols, rows], name="keep")
    spec = AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=8, mask=MaskSpec(input="bool"))
    g.set_outputs([g.add1(Attention(spec=spec), [q, k, v, keep], name="attn")])
    after = run_pipeline(g, "canonicalize,constant-fold,canonicalize-attention,dce")
    (node,) = after.attention_ops()
    assert node.spec.mask.input == "bool" and len(node.inputs) == 4
