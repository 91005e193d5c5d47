"""Every test model and variant compiles for mobile-cpu (slow: ~45 builds): the list of test_cuda_sweep.py
(cpu_graphs graphs, every variant case incl. the undecomposable ones, the examples/ torch models).

Per build: the export holds an aarch64 shared object (`readelf -h` says AArch64) with its .ll/.s sources;
no kernel fell back to attncc's numpy reference, except the delta-rule variants (undecomposable), whose
notes must say so. Numerics under qemu: test_mobile_cpu_emulated.py."""
from __future__ import annotations

import shutil
import subprocess

import pytest

import attncc

from sweep_cases import BFLOAT16, sweep_cases

READELF = shutil.which("aarch64-linux-gnu-readelf") or shutil.which("readelf")
CASES = sweep_cases(BFLOAT16)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or READELF is None,
                    reason="aarch64-linux-gnu-gcc / readelf not installed (Debian gcc-aarch64-linux-gnu, binutils)")
@pytest.mark.parametrize("name,model,extra", CASES, ids=[c[0] for c in CASES])
def test_compiles_to_an_aarch64_library(tmp_path, name, model, extra):
    if isinstance(model, attncc.ir.Graph):
        cm = attncc.compile(model, target="mobile-cpu", options={"cache": False})
    else:
        cm = attncc.compile(model, extra, target="mobile-cpu", options={"cache": False})
    program = cm.executable.artifacts["program"]
    if not program.runners:   # symbolic dims: the shape-generic build happens for the first shapes seen
        dims = extra if isinstance(extra, dict) else {}
        program.runner_for(tuple(tuple(d if isinstance(d, int) else dims.get(d, 4) for d in v.shape)
                                 for v in cm.graph.inputs))
    notes = cm.executable.notes + [n for r in program.runners.values() for n in r.plan.notes]
    host_only = "linear-delta" in name or "gated_delta" in name   # delta rules: loud host fallback, no kernel
    reference_steps = [s["node"] for r in program.runners.values() for s in r.plan.steps if s["kind"] == "reference"]
    if host_only:
        assert reference_steps and [n for n in notes if "numpy reference" in n], notes
    else:
        assert not reference_steps, (reference_steps, notes)
        assert not [n for n in notes if "numpy reference" in n], notes
    cm.export(str(tmp_path))
    libs = sorted(tmp_path.glob("kernels_*.so"))
    assert libs or host_only, f"{name}: no kernel library"
    for lib in libs:
        head = subprocess.run([READELF, "-h", str(lib)], capture_output=True, text=True, check=True).stdout
        assert "AArch64" in head and "DYN" in head, (name, lib.name, head)
        assert lib.with_suffix(".ll").exists() and lib.with_suffix(".s").exists(), f"{name}: sources missing"
