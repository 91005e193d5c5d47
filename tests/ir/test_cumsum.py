"""CumSum: verifier rules name the node and the broken rule; the interpreter matches torch/numpy for every
(axis, exclusive, reverse); printer and JSON round-trip keep the attributes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attncc import ir
from attncc.ir import IRError


def _graph(op, dtype="float32", shape=("B", 5, 3)):
    g = ir.Graph()
    x = g.add_input("x", dtype, shape)
    y = g.add1(op, [x], name="running")
    g.set_outputs([y])
    return g


def _torch_cumsum(x: np.ndarray, axis: int, exclusive: bool, reverse: bool) -> np.ndarray:
    """The ONNX CumSum definition written with torch ops (flip, cumsum, shift by one)."""
    t = torch.from_numpy(x).double()
    if reverse:
        t = t.flip(axis)
    y = t.cumsum(axis)
    if exclusive:
        y = y - t
    if reverse:
        y = y.flip(axis)
    return y.numpy()


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_interpreter_matches_torch(axis, exclusive, reverse):
    g = _graph(ir.CumSum(axis, exclusive, reverse))
    g.verify()
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    (got,) = ir.run_graph(g, [x])
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, _torch_cumsum(x, axis, exclusive, reverse), rtol=1e-6, atol=1e-6)


def test_integer_cumsum_is_exact_and_keeps_dtype():
    g = _graph(ir.CumSum(axis=1), "int64", (2, 6))
    x = np.array([[1, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]], np.int64)
    (got,) = ir.run_graph(g, [x])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, torch.from_numpy(x).cumsum(1).numpy())


def test_exclusive_starts_at_zero_and_reverse_ends_at_zero():
    x = np.arange(1, 5, dtype=np.float32)[None]
    (excl,) = ir.run_graph(_graph(ir.CumSum(1, exclusive=True), shape=(1, 4)), [x])
    (both,) = ir.run_graph(_graph(ir.CumSum(1, exclusive=True, reverse=True), shape=(1, 4)), [x])
    np.testing.assert_array_equal(excl, [[0, 1, 3, 6]])
    np.testing.assert_array_equal(both, [[9, 7, 4, 0]])


def test_rule_axis_out_of_range():
    with pytest.raises(IRError, match=r"node 'running' \(CumSum\).*axis 3 out of range for rank 3"):
        _graph(ir.CumSum(axis=3)).verify()


def test_rule_bool_input_rejected_with_the_fix():
    with pytest.raises(IRError, match=r"node 'running' \(CumSum\).*bool.*cast it to an integer or float"):
        _graph(ir.CumSum(axis=0), "bool").verify()


def test_rule_scalar_input_rejected():
    with pytest.raises(IRError, match=r"node 'running' \(CumSum\).*rank >= 1"):
        _graph(ir.CumSum(axis=0), shape=()).verify()


def test_rule_flags_must_be_bools():
    with pytest.raises(IRError, match=r"exclusive must be a bool, got 1"):
        _graph(ir.CumSum(axis=0, exclusive=1)).verify()


def test_print_parse_and_json_roundtrip():
    g = _graph(ir.CumSum(axis=-2, exclusive=True, reverse=True))
    text = ir.print_ir(g)
    assert '"exclusive": true' in text and '"reverse": true' in text
    assert ir.print_ir(ir.parse_ir(text)) == text
    back = ir.graph_from_json(ir.graph_to_json(g))
    assert ir.print_ir(back) == text
    assert back.nodes[-1].op == ir.CumSum(axis=-2, exclusive=True, reverse=True)
