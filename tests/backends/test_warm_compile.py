"""A compile whose every build is in the disk cache ("warm") runs on TVM's runtime alone: no `tvm` package and
no compiler library in the process, outputs equal to torch, and the model still exports; a cached entry that
checks out but does not load is refused with a warning and rebuilt."""
from __future__ import annotations

import json
import os
import subprocess
import sys

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
                  "tvm_after_export": "tvm" in sys.modules,
                  "warnings": [str(w.message) for w in caught if "cache" in str(w.message)]}))
"""


@pytest.fixture
def filled_cache(tmp_path, monkeypatch):
    """A disk cache holding the small block's build (compiled here, in this process)."""
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})   # this process's earlier builds must not skip the disk write
    model, x = small_block()
    compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.executable.artifacts["program"].builds == 1
    (entry,) = os.listdir(tmp_path / "cache" / "cpu")
    return tmp_path / "cache" / "cpu" / entry


def test_cached_compile_imports_no_tvm_compiler_and_exports(filled_cache, tmp_path):
    folder = tmp_path / "exported"
    env = {**os.environ, "ATTNCC_CACHE_DIR": str(filled_cache.parent.parent)}
    p = subprocess.run([sys.executable, "-c", WARM_CHILD, ROOT, compile_cache.code_fingerprint(), str(folder)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    row = json.loads(p.stdout.strip().splitlines()[-1])
    assert row["builds"] == 0 and row["warnings"] == []
    # neither the tvm package (tvm.tirx, tvm.te, tvm.s_tir, tvm.relax: the compiler's Python side) nor its library
    assert row["tvm_modules"] == [] and not row["tvm_after_export"]
    assert row["err"] < 1e-4 and row["reloaded_err"] < 1e-4
    # the export carries the cached library itself
    with open(filled_cache / "kernels.so", "rb") as a, open(folder / "kernels_0.so", "rb") as b:
        assert a.read() == b.read()


def test_cached_entry_that_does_not_load_is_rebuilt_with_a_warning(filled_cache, monkeypatch):
    # checksums rewritten to match: the sha256 check passes, loading the library fails
    (filled_cache / "kernels.so").write_bytes(b"\x7fELF not really a library")
    write_checksums(str(filled_cache), CHECKSUMS)
    monkeypatch.setattr(GLOBAL_CACHE, "memory", {})
    corrupt = GLOBAL_CACHE.stats.corrupt
    model, x = small_block()
    with pytest.warns(CacheWarning, match="unusable .*rebuilding"):
        compiled = attncc.compile(model, (x,), target="cpu")
    assert compiled.executable.artifacts["program"].builds == 1 and GLOBAL_CACHE.stats.corrupt == corrupt + 1
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(np.asarray(compiled(x)), want, rtol=1e-4, atol=1e-4)
    assert (filled_cache / "kernels.so").read_bytes()[:4] == b"\x7fELF" and \
        len((filled_cache / "kernels.so").read_bytes()) > 1000   # the rebuilt entry replaced the bad one
