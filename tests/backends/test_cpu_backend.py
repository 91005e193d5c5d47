"""The `cpu` backend lowers whole IR graphs to TVM and matches the reference interpreter."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import attncc
from attncc import ir
from attncc.backends import get_backend
from attncc.backends.cpu.backend import CpuBackend
from attncc.backends.core.cache import CompileCache
from attncc.backends.core.errors import CpuLoweringError

try:
    from .cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block, rng_arrays
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block, rng_arrays

FP32 = dict(rtol=1e-4, atol=1e-5)
BF16_TOL = 2e-2  # bf16 keeps 8 mantissa bits: compare |err| / max|ref| against 2e-2


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    return CpuBackend(cache=CompileCache())


def check(graph, backend, dims=None, bf16=False, seed=0, options=None):
    ex = backend.lower(graph, dict(options or {}))
    xs = rng_arrays(graph, seed, dims)
    got, want = ex(xs), ir.run_graph(graph, xs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        g64, w64 = g.astype(np.float64), w.astype(np.float64)
        if bf16:
            assert np.abs(g64 - w64).max() <= BF16_TOL * max(np.abs(w64).max(), 1.0)
        else:
            np.testing.assert_allclose(g64, w64, **FP32)
    return ex


def test_linear_norm_softmax_reduce_with_symbolic_batch(backend):
    g = mlp_block()
    ex = check(g, backend, {"batch": 2})
    xs = rng_arrays(g, 1, {"batch": 3})  # a second shape reuses the one shape-generic build
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)
    program = ex.artifacts["program"]
    assert list(program.runners) == ["generic"] and program.builds == 1 and not program.generic_failed


def test_symbolic_batch_per_shape_builds_when_generic_is_off(backend):
    g = mlp_block()
    ex = check(g, backend, {"batch": 2}, options={"shape_generic": False})
    xs = rng_arrays(g, 1, {"batch": 3})
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)
    assert len(ex.artifacts["program"].runners) == 2


def test_layout_gather_concat_where_matmul(backend):
    check(layout_ops(), backend)


ATTENTION_CASES = {
    "mha": {},
    "gqa_causal": dict(hq=8, hkv=2, causal=True),
    "mqa_top_left_causal": dict(hq=4, hkv=1, causal=True, sq=24, skv=40, alignment="top_left"),
    "bool_mask": dict(mask="bool"),
    "additive_mask_per_head": dict(mask="additive", mask_shape=(1, 4, 32, 32)),
    "padding_mask_row": dict(mask="bool", mask_shape=(2, 1, 1, 32)),
    "window_softcap": dict(causal=True, window=7, softcap=20.0),
    "kv_cache_rope_gqa": dict(hq=8, hkv=2, causal=True, rope=True, kv_cache=True, skv=40),
    "decode": dict(hq=8, hkv=2, sq=1, skv=48, kv_cache=True, causal=True),
    "bshd_cache": dict(layout="bshd", kv_cache=True, skv=40, causal=True),
}


# default-suite budget: these graph forms also run by default in the hypothesis fuzz test; here under -m slow
SLOW_ATTENTION = {"mha", "mqa_top_left_causal", "additive_mask_per_head", "window_softcap"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_ATTENTION else c
                                  for c in ATTENTION_CASES])
def test_attention_matches_reference(backend, case):
    ex = check(attention_graph(**ATTENTION_CASES[case]), backend)
    assert not any("generic TE attention" in n for n in ex.notes), ex.notes


def test_attention_fallback_is_correct_and_noted(backend):
    ex = check(attention_graph(kv_lengths=True, causal=True), backend)
    assert any("node 'attn'" in n and "kv_lengths" in n for n in ex.notes), ex.notes


def test_forced_generic_attention_matches(backend):
    ex = check(attention_graph(hq=8, hkv=2, mask="additive", softcap=10.0), backend, options={"attention": "generic"})
    assert any("generic" in n for n in ex.notes)


def test_bf16_graphs(backend):
    check(mlp_block("bfloat16"), backend, {"batch": 2}, bf16=True)
    check(attention_graph(hq=8, hkv=2, causal=True, rope=True, kv_cache=True, skv=40, dtype="bfloat16"), backend,
          bf16=True)


def test_llama_block_matches(backend):
    check(llama_block(hidden=256, heads=4, kv_heads=2, seq=64, ffn=512), backend)


def test_compile_cache_memory_and_disk_hits(backend):
    g = attention_graph(hq=4, hkv=2, causal=True)
    backend.lower(g, {})
    stats = backend.cache.stats
    assert (stats.misses, stats.hits) == (1, 0)
    backend.lower(g, {})
    assert stats.memory_hits == 1 and stats.misses == 1
    fresh = CpuBackend(cache=CompileCache())  # same disk directory, empty memory
    ex = fresh.lower(g, {})
    assert fresh.cache.stats.disk_hits == 1 and fresh.cache.stats.misses == 0
    xs = rng_arrays(g)
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)
    backend.lower(g, {"attention": "generic"})  # different options: a different entry
    assert stats.misses == 2


def test_export_and_load_round_trip(backend, tmp_path):
    g = llama_block(hidden=128, heads=4, kv_heads=2, seq=32, ffn=256)
    ex = backend.lower(g, {})
    files = backend.export(ex, str(tmp_path / "out"))
    assert any(f.endswith(".so") for f in files) and any(f.endswith("plans.json") for f in files)
    loaded = backend.load(str(tmp_path / "out"))
    xs = rng_arrays(g, 3)
    np.testing.assert_allclose(loaded(xs)[0], ex(xs)[0], rtol=1e-6, atol=1e-6)


def test_torch_inputs_go_through_dlpack_without_copies(backend):
    g = attention_graph(hq=4, hkv=2, causal=True)
    ex = backend.lower(g, {})
    assert ex.accepts_torch
    runner = next(iter(ex.artifacts["program"].runners.values()))
    xs = [torch.from_numpy(a).clone() for a in rng_arrays(g)]  # torch allocations are 64-byte aligned
    for x in xs:  # bound through DLPack: the kernels read the caller's memory
        assert np.from_dlpack(runner.to_tensor(x, "x", "float32")).ctypes.data == x.data_ptr()
    out = ex(xs)[0]
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), ir.run_graph(g, [x.numpy() for x in xs])[0], **FP32)


def test_tvm_failure_names_the_node(backend, monkeypatch):
    from tvm import tirx

    from attncc.backends.core import te_elementwise

    # an expression with an unbound variable: TVM itself rejects the kernel deep inside its passes
    monkeypatch.setitem(te_elementwise.ACTIVATIONS, "gelu", lambda x, cd: x + tirx.Var("unbound", "float32"))
    with pytest.raises(CpuLoweringError, match=r"node 'act' \(Activation\): .*failed: .*undefined variable"):
        backend.lower(mlp_block(), {}).run(rng_arrays(mlp_block(), 0, {"batch": 2}))


def test_attncc_compile_accepts_graph_for_cpu():
    g = attention_graph(hq=4, hkv=2, causal=True)
    cm = attncc.compile(g, target="cpu")
    xs = rng_arrays(g)
    np.testing.assert_allclose(cm(*xs), ir.run_graph(g, xs)[0], **FP32)
    assert get_backend("cpu").capabilities.vector_width_bits >= 128
