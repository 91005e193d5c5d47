"""CumSum is priced like an elementwise pass: one add per element, its input read and its output written once."""
from __future__ import annotations

import numpy as np

from attncc import ir
from attncc.cost_models import analyze_graph


def test_cumsum_counts_one_flop_per_element_and_bytes_in_plus_out():
    g = ir.Graph("cumsum")
    x = g.add_input("x", "float32", ("batch", "seq"))
    y = g.add1(ir.CumSum(axis=1), [x], name="running")
    g.set_outputs([g.add1(ir.Cast("int64"), [y], name="as_int")])
    report = analyze_graph(g, "host-cpu", dims={"batch": 3, "seq": 100})
    (row,) = [r for r in report.rows if r.kind == "CumSum"]
    assert row.cost.vector_flops == 300 and row.cost.flops == 0
    assert sum(row.cost.bytes.values()) == 2 * 300 * 4
    assert row.cost.time_s > 0 and np.isfinite(row.cost.time_s)
