"""mobile-cpu verified by execution: exported aarch64 folders run under qemu-aarch64 with an aarch64 Python and
TVM's own runtime (the folder's attncc_runtime.py over its cross-linked kernels), against the IR interpreter.

Slow: one emulated interpreter start costs tens of seconds, so every model runs in ONE qemu process.
Needs tests/tools/arm64_sysroot.sh (skips with the reason otherwise). Emulated times are not speed figures.
"""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

import attncc
from attncc.ir.interpreter import run_graph

try:
    from .mobile_models import make_decoder_layer, make_patch_vit
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from mobile_models import make_decoder_layer, make_patch_vit

pytestmark = pytest.mark.slow
RTOL, ATOL = 1e-4, 1e-5


def _emulation_reason():
    from attncc.backends.mobile.cpu.emulate import unavailable

    if shutil.which("aarch64-linux-gnu-gcc") is None:
        return "aarch64-linux-gnu-gcc not installed (Debian gcc-aarch64-linux-gnu)"
    return unavailable()


needs_emulation = pytest.mark.skipif(_emulation_reason() is not None,
                                     reason=f"mobile-cpu emulation not set up: {_emulation_reason()}")


def _torch_models():
    return {"decoder_layer": make_decoder_layer(), "patch_vit": make_patch_vit()}


def _variant_graphs():
    from tests.variants.decompose_cases import CASES, graph_of

    out = {}
    for case in CASES:
        spec, inputs = case.build(0)
        out[f"variant-{case.name}"] = (graph_of(spec, inputs), [inputs[n] for n in spec.input_names()])
    return out


@needs_emulation
def test_blocks_and_variants_run_under_qemu_and_match_the_interpreter(tmp_path):
    from attncc.backends.mobile.cpu.emulate import run_folders

    jobs, wants, skipped = [], {}, []
    for name, (module, inputs) in _torch_models().items():
        cm = attncc.compile(module, inputs, target="mobile-cpu")
        arrays = [x.numpy() for x in inputs]
        wants[name] = [np.asarray(o) for o in run_graph(cm.graph, arrays)]
        with torch.no_grad():   # the interpreter itself agrees with torch eager
            eager = module(*inputs)
        eager = eager if isinstance(eager, tuple) else (eager,)
        for w, e in zip(wants[name], eager):
            np.testing.assert_allclose(w, e.numpy(), rtol=RTOL, atol=ATOL)
        cm.export(str(tmp_path / name))
        jobs.append((name, arrays))
    for name, (graph, arrays) in _variant_graphs().items():
        cm = attncc.compile(graph, target="mobile-cpu", options={"cache": False})
        program = cm.executable.artifacts["program"]
        if any(s["kind"] == "reference" for r in program.runners.values() for s in r.plan.steps):
            skipped.append(name)   # host numpy reference steps cannot run on the device runtime
            continue
        wants[name] = [np.asarray(o) for o in run_graph(graph, arrays)]
        cm.export(str(tmp_path / name))
        jobs.append((name, arrays))
    results = run_folders([(str(tmp_path / n), a) for n, a in jobs])
    for (name, _), got in zip(jobs, results):
        assert len(got) == len(wants[name]), name
        for g, w in zip(got, wants[name]):
            np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=name)
    assert {"decoder_layer", "patch_vit"} <= {n for n, _ in jobs}
    assert len(skipped) <= 2, skipped


@needs_emulation
def test_exported_run_py_runs_under_qemu(tmp_path):
    """The folder's own run.py (what a user runs on the phone) under emulation, after `attncc compile -o`."""
    from attncc.backends.mobile.cpu.emulate import python_path, sysroot

    out = tmp_path / "out"
    model = "examples/models.py:llama_block"
    done = subprocess.run([sys.executable, "-m", "attncc", "compile", model, "--target", "mobile-cpu", "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    readelf = subprocess.run(["aarch64-linux-gnu-readelf", "-h", str(out / "kernels_0.so")], capture_output=True,
                             text=True)
    assert "AArch64" in readelf.stdout
    run = subprocess.run(["qemu-aarch64-static", "-L", sysroot(), python_path(), str(out / "run.py")],
                         env={"PATH": "/usr/bin:/bin", "TVM_USE_RUNTIME_LIB": "1", "PYTHONNOUSERSITE": "1"},
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "(2, 128, 256) float32" in run.stdout
