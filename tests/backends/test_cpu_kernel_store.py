"""Stored builds: a disk-cache hit and `attncc.load` load the build's ONE library instead of rebuilding,
and a corrupt entry is detected (sha256) and rebuilt with a warning, never loaded."""
from __future__ import annotations

import os

import numpy as np
import pytest

import attncc
from attncc import ir
from attncc.backends.cpu.backend import CpuBackend
from attncc.backends.core.cache import GLOBAL_CACHE, CacheWarning, CompileCache

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


def _lower_fresh(g):
    """Lower `g` as a new process would: an empty compile cache in memory, the same disk cache."""
    backend = CpuBackend(cache=CompileCache())
    return backend, backend.lower(g, {})


@pytest.mark.parametrize("index", [0, 1], ids=["prefill", "decode"])
def test_disk_hit_loads_the_one_library(cache_dir, index):
    g = _graphs()[index]
    built = CpuBackend(cache=CompileCache()).lower(g, {})
    (entry,) = os.listdir(cache_dir / "cpu")
    assert sorted(os.listdir(cache_dir / "cpu" / entry)) == ["checksums.json", "kernels.so", "plan.json"]
    backend, ex = _lower_fresh(g)
    assert backend.cache.stats.disk_hits == 1 and ex.artifacts["program"].builds == 0
    steps = next(iter(ex.artifacts["program"].runners.values())).plan.steps
    assert any(s["kind"] == "attention" and s["func"] for s in steps)  # attention runs from the same library
    xs = rng_arrays(g, 1)
    np.testing.assert_allclose(ex(xs)[0], built(xs)[0], rtol=0, atol=0)
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupt_cache_entry_is_rebuilt_with_a_warning(cache_dir, damage):
    g = _graphs()[0]
    CpuBackend(cache=CompileCache()).lower(g, {})
    (entry,) = os.listdir(cache_dir / "cpu")
    lib = cache_dir / "cpu" / entry / "kernels.so"
    if damage == "truncate":
        lib.write_bytes(lib.read_bytes()[:4096])   # a truncated .so kills the process if mapped (SIGBUS)
    elif damage == "garbage":
        lib.write_bytes(b"not a shared library")
    else:
        lib.unlink()
    with pytest.warns(CacheWarning, match="kernels.so"):
        backend, ex = _lower_fresh(g)
    assert backend.cache.stats.corrupt == 1 and ex.artifacts["program"].builds == 1
    xs = rng_arrays(g, 2)
    np.testing.assert_allclose(ex(xs)[0], ir.run_graph(g, xs)[0], **FP32)
    _, again = _lower_fresh(g)   # the rebuilt entry is sound
    assert again.artifacts["program"].builds == 0


def test_export_then_load_builds_nothing(cache_dir, tmp_path):
    g = _graphs()[0]
    cm = attncc.compile(g, target="cpu", options={"cache": False})
    cm.export(str(tmp_path / "out"))
    assert not list((tmp_path / "out").glob("attention_*.so"))   # one library per build, attention included
    loaded = attncc.load(str(tmp_path / "out"))
    xs = rng_arrays(g, 3)
    np.testing.assert_allclose(np.asarray(loaded(*xs)), ir.run_graph(g, xs)[0], **FP32)
    assert loaded.executable.artifacts["program"].builds == 0


def test_export_from_a_cache_hit_and_from_a_loaded_folder(cache_dir, tmp_path):
    """A second run of a script that exports (the build now comes from the disk cache), and exporting a model
    from `attncc.load`, both write complete folders (TVM cannot re-export a loaded library: the file is copied)."""
    g = _graphs()[1]
    attncc.compile(g, target="cpu").export(str(tmp_path / "first"))
    GLOBAL_CACHE.memory.clear()   # as in a fresh process: the build comes from the disk cache
    cm = attncc.compile(g, target="cpu")
    assert cm.executable.artifacts["program"].builds == 0
    cm.export(str(tmp_path / "second"))
    attncc.load(str(tmp_path / "second")).export(str(tmp_path / "third"))
    xs = rng_arrays(g, 4)
    for name in ("first", "second", "third"):
        got = attncc.load(str(tmp_path / name))(*xs)
        got = got[0] if isinstance(got, tuple) else got
        np.testing.assert_allclose(np.asarray(got), ir.run_graph(g, xs)[0], **FP32)
