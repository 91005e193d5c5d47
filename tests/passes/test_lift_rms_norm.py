"""lift-rms-norm: a spelled-out RMSNorm (as Llama/Mistral/Qwen write it) becomes one RMSNorm op, same outputs."""
from __future__ import annotations

import numpy as np
import pytest

from attncc import ir
from attncc.ir.kernels import kernel_launches
from attncc.ir.passes import run_pipeline


def _spelled_out(square: str, weight_first: bool, eps_first: bool) -> ir.Graph:
    g = ir.Graph("rms")
    x = g.add_input("x", "float32", (2, 5, 16))
    sq = g.add1(ir.Binary("pow"), [x, g.add_constant(np.array([2.0], np.float32), "two")]) if square == "pow" \
        else g.add1(ir.Binary("mul"), [x, x])
    mean = g.add1(ir.Reduce("mean", (-1,), True), [sq])
    eps = g.add_constant(np.array([1e-5], np.float32), "eps")
    r = g.add1(ir.Unary("rsqrt"), [g.add1(ir.Binary("add"), [eps, mean] if eps_first else [mean, eps])])
    y = g.add1(ir.Binary("mul"), [r, x])
    w = g.add_constant(np.linspace(0.5, 1.5, 16).astype(np.float32), "w")
    g.set_outputs([g.add1(ir.Binary("mul"), [w, y] if weight_first else [y, w])])
    return g


@pytest.mark.parametrize("square,weight_first,eps_first", [("pow", False, False), ("mul", True, True)])
def test_spelled_out_rms_norm_becomes_one_op(square, weight_first, eps_first):
    g = _spelled_out(square, weight_first, eps_first)
    lifted = run_pipeline(g, "canonicalize,lift-rms-norm")
    norms = lifted.find("RMSNorm")
    assert len(norms) == 1 and norms[0].op.eps == pytest.approx(1e-5) and norms[0].op.has_weight
    assert [n.op.op_name for n in lifted.nodes if n.op.op_name != "Constant"] == ["RMSNorm"]
    x = np.random.default_rng(0).standard_normal((2, 5, 16)).astype(np.float32)
    np.testing.assert_allclose(ir.run_graph(lifted, [x])[0], ir.run_graph(g, [x])[0], rtol=1e-5, atol=1e-6)
    assert len(kernel_launches(g)) == 3 and len(kernel_launches(lifted)) == 1   # pow | mean,add,rsqrt | mul,mul


def test_a_mean_over_another_axis_is_not_a_norm():
    g = ir.Graph("not_rms")
    x = g.add_input("x", "float32", (2, 5, 16))
    mean = g.add1(ir.Reduce("mean", (1,), True), [g.add1(ir.Binary("mul"), [x, x])])
    r = g.add1(ir.Unary("rsqrt"), [g.add1(ir.Binary("add"), [mean, g.add_constant(np.array([1e-5], np.float32))])])
    g.set_outputs([g.add1(ir.Binary("mul"), [x, r])])
    assert not run_pipeline(g, "lift-rms-norm").find("RMSNorm")
