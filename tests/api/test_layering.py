"""Layering rules (DESIGN.md, issue #15): checked on the source (every import statement, also those inside
functions) and in fresh interpreters (what sys.modules holds after the real import or run).

- `ir` imports neither torch nor tvm; `cost_models` imports neither torch nor tvm nor backends;
- `attncc.calibration` imports no TVM and reaches the backends only through public API (names in the
  backend module's `__all__`, none starting with "_"): the kernels it times come from `backends/cpu/kernel_suite.py`;
- the run path of an exported folder (its run.py / attncc_runtime.py, and `attncc.load`) imports no torch and
  still runs where torch cannot be imported at all.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# source folder -> the package it installs as (pyproject's package-dir)
PACKAGES = {"attncc": "attncc", "ir": "attncc.ir", "cost_models": "attncc.cost_models", "backends": "attncc.backends"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    parts[0] = PACKAGES[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, tuple[str, ...], int]]:
    """(absolute module, imported names, line) of every import statement in the file, at any depth."""
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.append((base, tuple(a.name for a in node.names), node.lineno))
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _top(name: str) -> str:
    return name.split(".")[0]


def violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    """Imports in `folder` of a module equal to or under any of `forbidden`."""
    bad = []
    for path in sources(folder):
        for mod, names, line in imports_of(path):
            targets = [mod] + [f"{mod}.{n}" for n in names]
            if any(t == f or t.startswith(f + ".") for t in targets for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mod} {names or ''}")
    return bad


def test_the_scanner_resolves_relative_imports():
    """Guards the scan itself: a relative import into backends from cost_models would be caught."""
    mods = {m for m, _, _ in imports_of(ROOT / "cost_models" / "calibrate.py")}
    assert "attncc.cost_models.hardware" in mods and "attncc.cost_models.fit" in mods
    assert violations("cost_models", ("attncc.cost_models.fit",)), "the scan must see cost_models' own imports"


def test_ir_imports_neither_torch_nor_tvm():
    assert not violations("ir", ("torch", "tvm", "tvm_ffi", "attncc.backends", "attncc.cost_models"))


def test_cost_models_import_nothing_from_torch_tvm_or_backends():
    assert not violations("cost_models", ("torch", "tvm", "tvm_ffi", "attncc.backends"))


def test_calibration_uses_only_public_backend_api_and_no_tvm():
    path = ROOT / "attncc" / "calibration.py"
    bad = []
    for mod, names, line in imports_of(path):
        if _top(mod) in ("tvm", "tvm_ffi"):
            bad.append(f"line {line}: imports {mod}")
        if not mod.startswith("attncc.backends"):
            continue
        for name in names:   # `from attncc.backends.x import y`: y is a public module or a name in x.__all__
            target = importlib.import_module(mod)
            if name.startswith("_"):
                bad.append(f"line {line}: private {mod}.{name}")
            elif f"{mod}.{name}" in sys.modules or (ROOT / "backends").joinpath(*mod.split(".")[2:], f"{name}.py").exists():
                sub = importlib.import_module(f"{mod}.{name}")
                if not getattr(sub, "__all__", None):
                    bad.append(f"line {line}: {mod}.{name} declares no public API (__all__)")
            elif name not in getattr(target, "__all__", ()):
                bad.append(f"line {line}: {mod}.{name} is not in {mod}.__all__")
        if not names:
            bad.append(f"line {line}: `import {mod}` (use a public module's names)")
    assert not bad, bad


def imports_into(paths: list[Path], forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """`path:line: module` for every import in `paths` of a module under `forbidden` (`from attncc import x`
    counts as attncc.x) that is not under `allowed`."""
    def under(name: str, roots: tuple[str, ...]) -> bool:
        return any(name == r or name.startswith(r + ".") for r in roots)

    bad = []
    for path in paths:
        for mod, names, line in imports_of(path):
            for target in ([f"{mod}.{n}" for n in names] if mod == "attncc" and names else [mod]):
                if under(target, forbidden) and not under(target, allowed):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: imports {target}")
    return bad


# issue 23: the back edges the layering rules forbid, each named when it comes back
BACK_EDGES = {
    "the compiled model does not import the API that makes it": (
        [ROOT / "attncc" / "compiled.py"], ("attncc.api",), ()),
    "frontends (and their conformance harnesses) import no API, compiled model or backend": (
        sources("attncc/frontends"), ("attncc.api", "attncc.compiled", "attncc.backends", "attncc.pipelines"), ()),
    "the backends import nothing of attncc above the IR and the cost models": (
        sources("backends"), ("attncc",), ("attncc.ir", "attncc.cost_models", "attncc.backends")),
    "target-aware passes receive Target records; they import no backend": (
        sources("attncc/passes"), ("attncc.backends",), ()),
}


@pytest.mark.parametrize("rule", sorted(BACK_EDGES))
def test_no_back_edges(rule):
    paths, forbidden, allowed = BACK_EDGES[rule]
    assert paths, f"{rule}: no files scanned"
    bad = imports_into(paths, forbidden, allowed)
    assert not bad, f"{rule}; forbidden imports:\n" + "\n".join(bad)


def test_back_edge_scan_names_the_forbidden_import(tmp_path, monkeypatch):
    """Guards the scan: a frontend that imports the API is reported with its file, line and module."""
    fake = ROOT / "attncc" / "frontends" / "_layering_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: "from ..api import compile\nimport attncc.backends\n"
                        if self == fake else Path.read_bytes(self).decode())
    assert imports_into([fake], ("attncc.api", "attncc.backends")) == [
        "attncc/frontends/_layering_probe.py:1: imports attncc.api",
        "attncc/frontends/_layering_probe.py:2: imports attncc.backends"]
    builder = [ROOT / "backends" / "core" / "builder.py"]   # `from ... import ir` is attncc.ir: allowed
    assert imports_into(builder, ("attncc",), ("attncc.ir", "attncc.backends")) == []


def test_calibration_imports_no_backend():
    """The callers (CLI, benchmarks, tests) pass the backend's kernel suite in."""
    bad = imports_into([ROOT / "attncc" / "calibration.py"], ("attncc.backends",))
    assert not bad, "\n".join(bad)


def _fresh(code: str, env: dict | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def _loaded_after(imports: str, then: str = "") -> set[str]:
    """Top-level-ish module names loaded by `imports` (+ `then`) beyond those `import attncc` loads."""
    r = _fresh(f"""
        import json, sys
        import attncc
        before = set(sys.modules)
        {imports}
        {then}
        print(json.dumps(sorted(set(sys.modules) - before)))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def test_import_attncc_loads_neither_torch_nor_tvm():
    r = _fresh("import sys, attncc; print(sorted(m for m in ('torch', 'tvm', 'tvm_ffi', 'onnx') if m in sys.modules))")
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]


def test_cost_models_at_run_time_load_no_torch_tvm_or_backend_modules():
    loaded = _loaded_after(
        "import attncc.cost_models as cm",
        "from attncc.ir.ops import AttentionSpec; cm.attention_cost(AttentionSpec(8, 2, 64), 1, 128, 128, 'float32', "
        "None, 'host-cpu'); cm.get_hardware('h100')")
    assert not {m for m in loaded if _top(m) in ("torch", "tvm", "tvm_ffi") or m.startswith("attncc.backends.")}


def test_importing_calibration_loads_no_tvm_or_backend_modules():
    loaded = _loaded_after("import attncc.calibration")
    assert not {m for m in loaded if _top(m) in ("torch", "tvm", "tvm_ffi") or m.startswith("attncc.backends.")}


# ---- the run path of an exported folder ----------------------------------------------------------------------
BLOCK_TORCH = """
import sys
class _NoTorch:   # a machine without torch: every `import torch` fails
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, _NoTorch())
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> str:
    import attncc
    from attncc.ir import Graph
    from attncc.ir.ops import Attention, AttentionSpec, MaskSpec

    g = Graph("layering")
    vals = [g.add_input(n, "float32", (1, 2, 5, 8)) for n in ("query", "key", "value")]
    g.set_outputs([g.add1(Attention(spec=AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True))), vals, name="attention")])
    folder = tmp_path_factory.mktemp("export") / "model"
    attncc.compile(g, target="cpu").export(str(folder))
    return str(folder)


def test_exported_run_py_imports_no_torch(exported):
    r = _fresh("""
        import runpy, sys
        runpy.run_path("run.py", run_name="__main__")
        print("loaded:", sorted(m for m in ("torch", "attncc") if m in sys.modules))
    """, cwd=exported)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "attention (1, 2, 5, 8) float32" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "loaded: []", r.stdout


@pytest.mark.slow   # imports torch in a fresh process (~5 s)
def test_exported_runtime_accepts_torch_imported_afterwards(exported):
    """Keeping torch out while TVM loads must not break a user who imports torch later and passes its tensors."""
    r = _fresh("""
        import numpy as np
        import attncc_runtime as rt
        import torch
        m = rt.load_folder(".")
        q = torch.randn(1, 2, 5, 8)
        out = m.run([q, q, q])[0].numpy()
        want = torch.nn.functional.scaled_dot_product_attention(q, q, q, is_causal=True).numpy()
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)
        print("ok")
    """, cwd=exported)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


@pytest.mark.parametrize("how", ["run.py", pytest.param("attncc.load", marks=pytest.mark.slow)])
def test_exported_folder_runs_where_torch_cannot_be_imported(exported, how):
    call = ('import runpy; runpy.run_path("run.py", run_name="__main__")' if how == "run.py" else
            'import attncc, numpy as np; x = np.ones((1, 2, 5, 8), np.float32); '
            'print(attncc.load(".")(x, x, x).shape)')
    r = _fresh(BLOCK_TORCH + call + "\nprint('torch' in sys.modules)", cwd=exported)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "False"
