"""The cpu target's fast paths for a Llama block: gated (SwiGLU) matmul fusion, the vectorized exp,
the thread pool size, misaligned inputs, and the per-step profile."""
from __future__ import annotations

import os

import numpy as np
import pytest

from attncc import ir
from attncc.backends.cpu.backend import CpuBackend
from attncc.backends.core.cache import CompileCache
from attncc.backends.cpu.matmul import pack_gated
from attncc.backends.cpu.target import ensure_thread_pool
from attncc.ir.ops import Activation, Binary, Linear, Unary

try:
    from .cpu_graphs import llama_block, rng_arrays
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import llama_block, rng_arrays

FP32 = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    return CpuBackend(cache=CompileCache())


def _runner(ex):
    return next(iter(ex.artifacts["program"].runners.values()))


def _glu(ffn: int, act: str | None = "silu", bias_up: bool = False) -> ir.Graph:
    rng = np.random.default_rng(1)
    g = ir.Graph("glu")
    x = g.add_input("x", "float32", (2, 24, 64))
    wg = g.add_constant(rng.standard_normal((64, ffn)).astype(np.float32) / 8, "wg")
    wu = g.add_constant(rng.standard_normal((64, ffn)).astype(np.float32) / 8, "wu")
    gate = g.add1(Linear(), [x, wg], name="gate")
    if act:
        gate = g.add1(Activation(act), [gate])
    if bias_up:
        up = g.add1(Linear(has_bias=True), [x, wu, g.add_constant(np.ones(ffn, np.float32), "bu")], name="up")
    else:
        up = g.add1(Linear(), [x, wu], name="up")
    g.set_outputs([g.add1(Binary("add"), [g.add1(Binary("mul"), [up, gate]), g.add_constant(np.float32(0.5), "c")],
                          name="y")])
    return g


def _check(graph, ex, seed=0):
    xs = rng_arrays(graph, seed)
    for got, want in zip(ex(xs), ir.run_graph(graph, xs)):
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), **FP32)


@pytest.mark.parametrize("act", ["silu", "gelu", None])
def test_gated_projection_is_one_kernel_and_matches(backend, act):
    g = _glu(96, act)
    ex = backend.lower(g, {})
    ops = [s["op"] for s in _runner(ex).plan.steps]
    assert len(ops) == 1 and ops[0].count("Linear") == 2, ops  # gate, act, up, mul and the +0.5 epilogue
    _check(g, ex)


@pytest.mark.parametrize("ffn,bias", [(100, False), (96, True)])
def test_gated_fusion_declines_unsupported_shapes(backend, ffn, bias):
    g = _glu(ffn, bias_up=bias)  # N % 16 != 0, or a biased projection: two separate matmul kernels
    ex = backend.lower(g, {})
    assert sum(s["op"].count("Linear") for s in _runner(ex).plan.steps) == 2
    assert len(_runner(ex).plan.steps) == 2
    _check(g, ex)


def test_pack_gated_interleaves_16_column_halves():
    wg = np.arange(4 * 32, dtype=np.float32).reshape(4, 32)
    p = pack_gated(wg, -wg)
    assert p.shape == (2, 4, 32)
    np.testing.assert_array_equal(p[1, :, :16], wg[:, 16:])
    np.testing.assert_array_equal(p[1, :, 16:], -wg[:, 16:])
    with pytest.raises(ValueError, match="multiple|N %"):
        pack_gated(np.zeros((4, 20), np.float32), np.zeros((4, 20), np.float32))


def test_vectorized_exp_keeps_libm_edge_cases(backend):
    g = ir.Graph("exp")
    x = g.add_input("x", "float32", (64,))
    g.set_outputs([g.add1(Unary("exp"), [x], name="e"), g.add1(Activation("silu"), [x], name="s"),
                   g.add1(Activation("sigmoid"), [x], name="sg")])
    xs = np.concatenate([np.linspace(-100, 88.7, 58), [np.nan, -np.inf, np.inf, 0.0, 88.75, -87.0]]).astype(np.float32)
    got = backend.lower(g, {})([xs])
    with np.errstate(over="ignore", invalid="ignore"):
        x64 = xs.astype(np.float64)
        want = [w.astype(np.float32) for w in (np.exp(x64), x64 / (1 + np.exp(-x64)), 1 / (1 + np.exp(-x64)))]
    for gv, wv in zip(got, want):
        assert np.array_equal(np.isnan(gv), np.isnan(wv)) and np.array_equal(np.isinf(gv), np.isinf(wv))
        fin = np.isfinite(wv) & (np.abs(wv) > 1e-30)
        np.testing.assert_allclose(gv[fin], wv[fin], rtol=2e-5)


def test_thread_pool_uses_every_core_without_touching_environ(backend):
    from attncc.backends.cpu.target import host_cores

    before = dict(os.environ)
    backend.lower(_glu(32), {})
    assert dict(os.environ) == before  # sized through TVM's API, not os.environ
    want = int(os.environ.get("TVM_NUM_THREADS") or host_cores())
    assert ensure_thread_pool() == want


def test_misaligned_numpy_input_and_profile(backend):
    g = llama_block(hidden=128, heads=4, kv_heads=2, seq=32, ffn=256)
    ex = backend.lower(g, {})
    xs = rng_arrays(g, 0)
    raw = np.empty(xs[0].size + 1, np.float32)[1:].reshape(xs[0].shape)  # 4 bytes off any 64-byte boundary
    raw[...] = xs[0]
    got = ex([raw] + xs[1:])[0]
    np.testing.assert_allclose(got, ex(xs)[0], rtol=0, atol=0)
    prof = _runner(ex).profile(xs, repeats=2)
    assert [p["step"] for p in prof] == list(range(len(_runner(ex).plan.steps)))
    assert all(p["ms"] > 0 for p in prof) and any(p["kind"] == "attention" for p in prof)
