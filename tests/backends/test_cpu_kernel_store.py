"""Stored attention kernels: a disk-cache hit and `attncc.load` load their libraries instead of rebuilding them."""
from __future__ import annotations

import os

import numpy as np
import pytest

import attncc
from attncc import ir
from attncc.backends.cpu import attention as cpu_attention
from attncc.backends.cpu.backend import CpuBackend
from attncc.backends.core.cache import CompileCache

try:
    from .cpu_graphs import attention_graph, rng_arrays
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import attention_graph, rng_arrays

FP32 = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _graphs():
    """A prefill kernel and a decode kernel (q_len 1), so both schedule kinds go through the store."""
    return [attention_graph(hq=4, hkv=2, causal=True, sq=40, skv=40),
            attention_graph(hq=8, hkv=2, sq=1, skv=48, kv_cache=True, causal=True)]


def _kernels(ex) -> list:
    return [k for runner in ex.artifacts["program"].runners.values() for k in runner.kernels.values()]


def _lower_fresh(g):
    """Lower `g` as a new process would: empty compile cache in memory and no in-process attention kernels."""
    cpu_attention.clear_cache()
    backend = CpuBackend(cache=CompileCache())
    return backend, backend.lower(g, {})


@pytest.mark.parametrize("index", [0, 1], ids=["prefill", "decode"])
def test_disk_hit_loads_attention_kernels(cache_dir, index):
    g = _graphs()[index]
    built = CpuBackend(cache=CompileCache()).lower(g, {})
    (entry,) = os.listdir(cache_dir / "cpu")
    assert len(list((cache_dir / "cpu" / entry).glob("attention_*.so"))) == 1
    compiled = cpu_attention.build.STATS.compiled
    backend, ex = _lower_fresh(g)
    assert backend.cache.stats.disk_hits == 1
    assert cpu_attention.build.STATS.compiled == compiled, "a disk hit rebuilt an attention kernel"
    (kernel,) = _kernels(ex)
    assert kernel.library_path is not None and kernel.executable is None
    assert kernel.kind == _kernels(built)[0].kind and kernel.schedule == _kernels(built)[0].schedule
    xs = rng_arrays(g, 1)
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)


def test_disk_hit_rebuilds_a_missing_or_corrupt_library(cache_dir):
    g = _graphs()[0]
    CpuBackend(cache=CompileCache()).lower(g, {})
    (entry,) = os.listdir(cache_dir / "cpu")
    (cache_dir / "cpu" / entry / "attention_0.so").write_bytes(b"not a shared library")
    compiled = cpu_attention.build.STATS.compiled
    backend, ex = _lower_fresh(g)
    assert backend.cache.stats.disk_hits == 1 and cpu_attention.build.STATS.compiled == compiled + 1
    assert _kernels(ex)[0].executable is not None
    os.remove(cache_dir / "cpu" / entry / "attention_0.so")
    _, ex = _lower_fresh(g)
    assert cpu_attention.build.STATS.compiled == compiled + 2
    xs = rng_arrays(g, 2)
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)


def test_export_then_load_loads_attention_kernels(cache_dir, tmp_path):
    g = _graphs()[0]
    cm = attncc.compile(g, target="cpu", options={"cache": False})
    cm.export(str(tmp_path / "out"))
    assert (tmp_path / "out" / "attention_0_0.so").exists()
    cpu_attention.clear_cache()
    compiled = cpu_attention.build.STATS.compiled
    loaded = attncc.load(str(tmp_path / "out"))
    assert cpu_attention.build.STATS.compiled == compiled, "load() rebuilt an attention kernel"
    (kernel,) = _kernels(loaded.executable)
    assert kernel.library_path == str(tmp_path / "out" / "attention_0_0.so")
    xs = rng_arrays(g, 3)
    np.testing.assert_allclose(loaded(*xs), cm(*xs), rtol=1e-6, atol=1e-6)
    loaded.export(str(tmp_path / "again"))  # a loaded kernel re-exports by copying its library
    assert (tmp_path / "again" / "attention_0_0.so").read_bytes() == (tmp_path / "out" / "attention_0_0.so").read_bytes()
