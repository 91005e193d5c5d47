"""The cpu backend's CumSum kernel equals the reference interpreter for every (axis, exclusive, reverse),
for float, bf16 and int64 inputs, with symbolic dims and with an elementwise epilogue fused in."""
from __future__ import annotations

import numpy as np
import pytest

from attncc import ir
from attncc.backends.cpu.backend import CpuBackend
from attncc.backends.core.cache import CompileCache


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    return CpuBackend(cache=CompileCache())


def _graph(axis, exclusive, reverse, dtype="float32"):
    """x -> CumSum -> * 2 (a fused epilogue), and the bare CumSum as a second output."""
    g = ir.Graph("cumsum")
    x = g.add_input("x", dtype, ("batch", 6, 5))
    s = g.add1(ir.CumSum(axis, exclusive, reverse), [x], name="running")
    two = g.add_constant(np.array(2, ir.types.numpy_dtype(dtype)), "two")
    y = g.add1(ir.Binary("mul"), [s, two], name="doubled")
    g.set_outputs([y])
    return g


def _run(backend, g, batch, dtype):
    rng = np.random.default_rng(batch)
    x = (rng.standard_normal((batch, 6, 5)) * 4).astype(ir.types.numpy_dtype(dtype))
    ex = backend.lower(g, {})
    return ex([x])[0], ir.run_graph(g, [x])[0], ex


@pytest.mark.parametrize("axis,exclusive,reverse", [(0, False, False), (1, True, False), (-1, False, True),
                                                    (1, True, True)])
def test_cumsum_matches_interpreter(backend, axis, exclusive, reverse):
    g = _graph(axis, exclusive, reverse)
    for batch in (1, 3):  # two plans of the same symbolic graph
        got, want, ex = _run(backend, g, batch, "float32")
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert not ex.notes  # no fallback, no generic schedule
    for runner in ex.artifacts["program"].runners.values():  # one TVM kernel: the scan with its epilogue
        assert [s["op"] for s in runner.plan.steps if s["kind"] == "call"] == ["CumSum+Binary"]


def test_cumsum_int64_is_exact(backend):
    got, want, _ = _run(backend, _graph(1, True, False, "int64"), 2, "int64")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_cumsum_bf16_accumulates_in_fp32(backend):
    got, want, _ = _run(backend, _graph(-1, False, False, "bfloat16"), 2, "bfloat16")
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    assert np.abs(g64 - w64).max() <= 2e-2 * max(np.abs(w64).max(), 1.0)
