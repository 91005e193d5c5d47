"""A Transpose that moves only size-1 axes (a decode step's (1, 1, H, D) -> (1, H, 1, D)) keeps the element
order: it is a view in the one grouping decision, so neither the cpu plan nor the kernel list runs it."""
from __future__ import annotations

import numpy as np

import attncc
from attncc import ir
from attncc.ir.kernels import classify, kernel_launches
from attncc.ir.ops import Linear, Reshape, Transpose


def _graph():
    rng = np.random.default_rng(0)
    g = ir.Graph("heads")
    x = g.add_input("x", "float32", (1, 1, 32))
    y = g.add1(Linear(), [x, g.add_constant(rng.standard_normal((32, 32)).astype(np.float32), "w")], name="proj")
    y = g.add1(Reshape((1, 1, 4, 8)), [y])
    one = g.add1(Transpose((0, 2, 1, 3)), [y], name="one_token_heads")        # moves the size-1 sequence axis
    swap = g.add1(Transpose((0, 3, 2, 1)), [one], name="swap_heads_dims")     # moves 4 past 8: a real copy
    g.set_outputs([swap])
    return g


def test_unit_axis_transpose_is_a_view_and_runs_no_kernel():
    g = _graph()
    kinds = {n.name: classify(n) for n in g.nodes}
    assert kinds["one_token_heads"] == "view" and kinds["swap_heads_dims"] == "injective"
    cm = attncc.compile(g, target="cpu", passes="")
    steps = next(iter(cm.executable.artifacts["program"].runners.values())).plan.steps
    assert [s["node"] for s in steps] == ["proj", "swap_heads_dims"]
    assert [launch.name for launch in kernel_launches(g)] == ["proj", "swap_heads_dims"]   # the report's kernels
    x = np.random.default_rng(1).standard_normal((1, 1, 32)).astype(np.float32)
    want = (x @ g.constants["w"]).reshape(1, 1, 4, 8).transpose(0, 2, 1, 3).transpose(0, 3, 2, 1)
    np.testing.assert_allclose(np.asarray(cm(x)), want, rtol=1e-5, atol=1e-5)
