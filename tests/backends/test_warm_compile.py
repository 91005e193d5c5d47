"""A compile whose every build is in the disk cache ("warm") runs on TVM's runtime alone: no `tvm` package and
no compiler library in the process, outputs equal to torch, and the model still exports; a cached entry that
checks out but does not load is refused with a warning and rebuilt."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import attncc
from attncc.backends.core import cache as compile_cache
from attncc.backends.core.cache import CHECKSUMS, GLOBAL_CACHE, CacheWarning, write_checksums

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from examples.models import LlamaStyleBlock  # noqa: E402


def small_block():
    """The example Llama-style block (RMSNorm, GQA attention with RoPE, gated MLP), small enough to build fast."""
    torch.manual_seed(0)
    return LlamaStyleBlock(hidden=64, heads=4, kv_heads=2, ffn=128).eval(), torch.randn(1, 16, 64)


# a fresh process: compile with the warm cache, then say which TVM modules it imported, and export + load
WARM_CHILD = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
import torch
from examples.models import LlamaStyleBlock
import attncc
from attncc.backends.core import cache
cache._FINGERPRINT = sys.argv[2]   # the parent's source hash: an edit elsewhere mid-test must not change the key
torch.manual_seed(0)   # small_block() of the test module
model, x = LlamaStyleBlock(hidden=64, heads=4, kv_heads=2, ffn=128).eval(), torch.randn(1, 16, 64)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    compiled = attncc.compile(model, (x,), target="cpu")
    got = compiled(x)
tvm_modules = sorted(m for m in sys.modules if m == "tvm" or m.startswith("tvm."))
with torch.no_grad():
    want = model(x)
compiled.export(sys.argv[3])
reloaded = attncc.load(sys.argv[3])(x)
print(json.dumps({"tvm_modules": tvm_modules, "builds": compiled.executable.artifacts["program"].builds,
                  "err": float((got - want).abs().max()), "reloaded_err": float((reloaded - want).abs().max()),
                  "tvm_after_export": "tvm" in sys.modules, "diagnostics": [str(d) for d in compiled.diagnostics],
                  "warnings": [str(w.message) for w in caught if "cache" in str(w.message)]}))
"""


@pytest.fixture
def filled_cache(tmp_path, monkeypatch):
    """A disk cache holding the small block's build (compiled here, in this process): its entry folder and the
    compiled model's diagnostics."""
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})   # this process's earlier builds must not skip the disk write
    model, x = small_block()
    compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.executable.artifacts["program"].builds == 1
    (entry,) = os.listdir(tmp_path / "cache" / "cpu")
    return SimpleNamespace(entry=tmp_path / "cache" / "cpu" / entry, diagnostics=[str(d) for d in compiled.diagnostics])


def test_cached_compile_imports_no_tvm_compiler_and_exports(filled_cache, tmp_path):
    folder = tmp_path / "exported"
    env = {**os.environ, "ATTNCC_CACHE_DIR": str(filled_cache.entry.parent.parent)}
    p = subprocess.run([sys.executable, "-c", WARM_CHILD, ROOT, compile_cache.code_fingerprint(), str(folder)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads(p.stdout.strip().splitlines()[-1])
    assert row["builds"] == 0 and row["warnings"] == []
    # neither the tvm package (tvm.tirx, tvm.te, tvm.s_tir, tvm.relax: the compiler's Python side) nor its library
    assert row["tvm_modules"] == [] and not row["tvm_after_export"]
    assert row["err"] < 1e-4 and row["reloaded_err"] < 1e-4
    assert row["diagnostics"] == filled_cache.diagnostics   # notes: see test_cached_compile_keeps_its_notes
    # the export carries the cached library itself
    with open(filled_cache.entry / "kernels.so", "rb") as a, open(folder / "kernels_0.so", "rb") as b:
        assert a.read() == b.read()


def test_cached_compile_keeps_its_notes_for_strict_and_the_report(tmp_path, monkeypatch):
    """The lowering notes of a build (here: the flash kernel refused, so the generic attention ran) are stored
    with its cache entry: a cached compile warns, reports and refuses under strict=True as the cold one did,
    even though a build now would run the flash kernel."""
    from attncc.backends.cpu.plugin import CpuPlugin
    from attncc.errors import FallbackError, FallbackWarning

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})
    model, x = small_block()

    def no_flash_kernel(self, cfg, target):
        raise RuntimeError("no flash kernel in this test")

    with monkeypatch.context() as m:
        m.setattr(CpuPlugin, "attention_primfunc", no_flash_kernel)
        with pytest.warns(FallbackWarning, match="generic TE attention"):
            cold = attncc.compile(model, (x,), target="cpu")
    notes = [str(d) for d in cold.diagnostics]
    assert cold.executable.artifacts["program"].builds == 1 and any("no flash kernel" in n for n in notes)
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})   # as a new process: the disk entry only
    with pytest.warns(FallbackWarning, match="generic TE attention"):
        warm = attncc.compile(model, (x,), target="cpu")
    assert warm.executable.artifacts["program"].builds == 0 and [str(d) for d in warm.diagnostics] == notes
    assert any(r.lowering for r in warm.report.rows)   # the report marks the row that ran as generic attention
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})
    with pytest.raises(FallbackError, match="fell back"):
        attncc.compile(model, (x,), target="cpu", strict=True)


def test_cached_entry_that_does_not_load_is_rebuilt_with_a_warning(filled_cache, monkeypatch):
    entry = filled_cache.entry
    # checksums rewritten to match: the sha256 check passes, loading the library fails
    (entry / "kernels.so").write_bytes(b"\x7fELF not really a library")
    write_checksums(str(entry), CHECKSUMS)
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})
    corrupt = GLOBAL_CACHE.stats.corrupt
    model, x = small_block()
    with pytest.warns(CacheWarning, match="unusable .*rebuilding"):
        compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.executable.artifacts["program"].builds == 1 and GLOBAL_CACHE.stats.corrupt == corrupt + 1
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(np.asarray(compiled(x)), want, rtol=1e-4, atol=1e-4)
    rebuilt = (entry / "kernels.so").read_bytes()
    assert rebuilt[:4] == b"\x7fELF" and len(rebuilt) > 1000   # the rebuilt entry replaced the bad one


def test_cache_key_covers_recorded_tiles_and_the_host_isa(monkeypatch):
    """Kernels are built from the tile pass's records (graph metadata, not in the printed graph) and for this
    host's SIMD flags: either changing must miss the cache; a refit's predicted times must not."""
    from cpu_graphs import attention_graph

    g = attention_graph(hq=4, hkv=2, causal=True, sq=8, skv=8)
    host, cross = {"kind": "llvm", "mcpu": "znver3"}, {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}

    def key(target=host):
        return compile_cache.cache_key(g, target, {}, [(1, 8)], "cpu")

    untiled = key()
    g.metadata["tiling"] = {"q_proj": {"m_block": 8, "n_block": 32, "predicted_s": 1e-5}}
    tiled = key()
    g.metadata["tiling"]["q_proj"]["predicted_s"] = 2e-5
    assert tiled != untiled and key() == tiled
    g.metadata["tiling"]["q_proj"]["m_block"] = 4
    assert key() != tiled
    cross_key = key(cross)
    monkeypatch.setattr(compile_cache, "host_isa", lambda: "x86_64:avx,avx2,fma")
    other_host = key()
    monkeypatch.undo()
    assert other_host != key() and key(cross) == cross_key   # cross-compiled code does not depend on this host
