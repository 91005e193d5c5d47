"""Issue 22, item 2: the exported runtime checks its folder before loading anything (the sha256 of every file
in manifest.json, as attncc.load does), refuses dtype casts unless asked (--allow-cast / allow_cast=True), and
turns every failure into one line naming the file; a device build says which runtime and device it needs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from .range_models import HIDDEN, copy_export, rope_block


def run_py(folder: str, tmp_path, *args: str, inputs=None) -> subprocess.CompletedProcess:
    """The folder's own run.py in a fresh interpreter (TVM runtime + numpy; no attncc, no torch)."""
    extra = []
    if inputs is not None:
        np.savez(tmp_path / "x.npz", *inputs)
        extra = ["--inputs", str(tmp_path / "x.npz"), "--outputs", str(tmp_path / "y.npz")]
    return subprocess.run([sys.executable, os.path.join(folder, "run.py"), *extra, *args], capture_output=True,
                          text=True, timeout=300, cwd=str(tmp_path))


def one_line_error(done: subprocess.CompletedProcess, *names: str) -> str:
    """The run failed with exit status 2 and one `run.py: error: ...` line on stderr naming `names`."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run.py: error: "), done.stderr[-3000:]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_truncated_kernel_library_is_named_not_a_bus_error(tmp_path):
    folder = copy_export(tmp_path)
    lib = os.path.join(folder, "kernels_0.so")
    with open(lib, "r+b") as f:
        f.truncate(os.path.getsize(lib) // 2)
    line = one_line_error(run_py(folder, tmp_path), "kernels_0.so")
    assert "does not match its sha256 in manifest.json" in line


def test_modified_constants_file_is_refused(tmp_path):
    folder = copy_export(tmp_path)
    path = os.path.join(folder, "constants_0.npz")
    with np.load(path) as data:
        consts = {n: data[n] for n in data.files}
    name = next(iter(consts))
    consts[name] = consts[name] + 1       # still a valid npz of the same names and shapes
    np.savez(path, **consts)
    one_line_error(run_py(folder, tmp_path), "constants_0.npz", "does not match its sha256")


@pytest.mark.parametrize("damage", ["truncated", "not an object"])
def test_invalid_manifest_is_named(tmp_path, damage):
    folder = copy_export(tmp_path)
    path = os.path.join(folder, "manifest.json")
    text = open(path).read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2] if damage == "truncated" else "[1, 2]")
    one_line_error(run_py(folder, tmp_path), "manifest.json")


def test_a_file_missing_from_the_manifest_is_refused(tmp_path):
    folder = copy_export(tmp_path)
    path = os.path.join(folder, "manifest.json")
    manifest = json.load(open(path))
    del manifest["files"]["plan_0.json"]
    json.dump(manifest, open(path, "w"))
    one_line_error(run_py(folder, tmp_path), "plan_0.json", "not listed in manifest.json")


def test_float64_input_is_refused_unless_cast_is_allowed(tmp_path):
    folder = rope_block()[2]
    x = np.random.default_rng(0).standard_normal((1, 9, HIDDEN))
    one_line_error(run_py(folder, tmp_path, inputs=[x]), "input 'x' is float64 but the model expects float32",
                   "--allow-cast")
    done = run_py(folder, tmp_path, "--allow-cast", inputs=[x])
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "y.npz") as data:
        got = data["arr_0"]
    np.testing.assert_allclose(got, rope_block()[1](x.astype(np.float32)), rtol=1e-5, atol=1e-5)


def test_load_folder_api_raises_the_runtime_errors(tmp_path):
    """From user code: rt.load_folder / model.run raise FolderError (an OSError) and InputError (a TypeError)."""
    folder = copy_export(tmp_path)
    with open(os.path.join(folder, "constants_0.npz"), "ab") as f:
        f.write(b"\0")
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); import attncc_runtime as rt\n"
            "try:\n    rt.load_folder(sys.argv[1])\nexcept OSError as e:\n    print(type(e).__name__, e)\n"
            "m = rt.load_folder(sys.argv[1], verify=False)\n"
            "try:\n    m.run([np.zeros((1, 9, %d), np.int32)])\nexcept TypeError as e:\n    print(type(e).__name__, e)\n"
            % HIDDEN)
    done = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = done.stdout.strip().splitlines()
    assert first.startswith("FolderError ") and "constants_0.npz: does not match its sha256" in first
    assert second.startswith("InputError input 'x' is int32 but the model expects float32")


def test_cuda_folder_without_a_cuda_runtime_says_what_it_needs(tmp_path):
    """nvcc builds the kernels here without a GPU; the folder's run.py must say it needs CUDA and an NVIDIA GPU."""
    import tvm

    import attncc
    from attncc import ir

    if tvm.cuda(0).exist:
        pytest.skip("this machine has a CUDA device: the folder would run")
    g = ir.Graph("cuda_tiny")
    q, k, v = (g.add_input(n, "float32", (1, h, 8, 16)) for n, h in (("q", 2), ("k", 1), ("v", 1)))
    g.set_outputs([g.add1(ir.Attention(spec=ir.AttentionSpec(2, 1, 16, mask=ir.MaskSpec(causal=True))), [q, k, v],
                          name="attn")])
    try:
        cm = attncc.compile(g, target="cuda")
    except Exception as e:  # noqa: BLE001 - no nvcc on this machine
        pytest.skip(f"cannot build for cuda here: {type(e).__name__}: {e}")
    folder = str(tmp_path / "cuda")
    cm.export(folder)
    line = one_line_error(run_py(folder, tmp_path), "kernels_0.so", "CUDA", "NVIDIA GPU")
    assert "loader of that name is not registered" not in line.split("(")[0]
