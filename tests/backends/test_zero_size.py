"""Zero-size tensors on the cpu target and the interpreter (#15 item 8: an empty rotary pass-through Slice
once failed with 'expected to be compact array'). Empty values must give empty outputs; reductions and
matmuls over an empty axis must give the empty-set value (numpy's identities: sum 0, prod 1, mean NaN,
max -inf / min +inf as ONNX ReduceMax/ReduceMin define), never unwritten memory or a crash."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import attncc
from attncc import ir
from attncc.ir.ops import Binary, Concat, Linear, Reduce, Slice, Softmax, Unary

X = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.0
BIAS = np.arange(5, dtype=np.float32)


def _graph() -> ir.Graph:
    g = ir.Graph("empty")
    x = g.add_input("x", "float32", (3, 4))
    z = g.add1(Slice(axis=1, start=4, stop=None, step=1), [x], name="z")         # (3, 0)
    nz = g.add1(Unary("neg"), [z], name="nz")
    outs = [g.add1(Concat(axis=1), [x, nz], name="cat"), g.add1(Binary("add"), [nz, nz], name="add"),
            g.add1(Softmax(axis=-1), [nz], name="sm")]
    outs += [g.add1(Reduce(fn, axes=(1,), keepdims=True), [z], name=fn) for fn in ("sum", "prod", "max", "min", "mean")]
    w = g.add_constant(np.ones((0, 5), np.float32), "w")
    outs.append(g.add1(Linear(has_bias=True), [z, w, g.add_constant(BIAS, "b")], name="proj"))
    g.set_outputs(outs)
    return g


def _expected() -> list[np.ndarray]:
    z = X[:, 4:]
    col = lambda v: np.full((3, 1), v, np.float32)  # noqa: E731
    return [X.copy(), z + z, z.copy(), col(0), col(1), col(-np.inf), col(np.inf), col(np.nan),
            np.broadcast_to(BIAS, (3, 5))]


@pytest.mark.parametrize("target,passes", [("reference", None), ("cpu", "dce"), ("cpu", None)],
                         ids=["reference", "cpu-no-canonicalize", "cpu-default"])
def test_zero_size_values_and_empty_reductions(target, passes, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")    # no fallback warning, no numpy 'mean of empty slice'
        got = attncc.compile(_graph(), target=target, passes=passes, strict=True)(X)
    for name, a, e in zip(["cat", "add", "sm", "sum", "prod", "max", "min", "mean", "proj"], got, _expected()):
        a = np.asarray(a)
        assert a.shape == e.shape, name
        np.testing.assert_array_equal(a, e, err_msg=name)


@pytest.mark.parametrize("layout", ["bhsd", "bshd"])
def test_attention_with_an_empty_kv_cache_past(layout, tmp_path, monkeypatch):
    """A first decode step: past K/V of length 0 (found by the fuzz test: the bshd past's transpose did not
    schedule, 'Divide by zero'; bhsd failed at run time, 'expected to be compact array')."""
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    from attncc.ir import AttentionSpec, MaskSpec

    spec = AttentionSpec(num_heads=2, num_kv_heads=1, head_dim=5, kv_cache=True, layout=layout,
                         mask=MaskSpec(causal=True, alignment="bottom_right"))
    shp = (lambda h, s: (1, h, s, 5)) if layout == "bhsd" else (lambda h, s: (1, s, h, 5))
    g = ir.Graph("first_step")
    ins = [g.add_input(n, "float32", shp(h, s)) for n, h, s in
           (("q", 2, 3), ("k", 1, 3), ("v", 1, 3), ("past_k", 1, 0), ("past_v", 1, 0))]
    g.set_outputs(g.add(ir.Attention(spec=spec), ins, name="attn"))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    got = attncc.compile(g, target="cpu", strict=True)(*arrays)
    want = ir.run_graph(g, arrays)
    np.testing.assert_array_equal(np.asarray(got[1]), arrays[1])   # present = the new rows
    for a, e in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-5, atol=1e-6)
