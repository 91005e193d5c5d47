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


def load_error(folder: str) -> str:
    """The FolderError that loading `folder` raises (the runtime's own code, as copied into the folder)."""
    from attncc.backends.core.runtime import FolderError, load_folder

    with pytest.raises(FolderError) as error:
        load_folder(folder)
    assert isinstance(error.value, OSError)
    return str(error.value)


def test_modified_constants_file_is_refused(tmp_path):
    folder = copy_export(tmp_path)
    path = os.path.join(folder, "constants_0.npz")
    with np.load(path) as data:
        consts = {n: data[n] for n in data.files}
    name = next(iter(consts))
    consts[name] = consts[name] + 1       # still a valid npz of the same names and shapes
    np.savez(path, **consts)
    assert f"{path}: does not match its sha256 in manifest.json" in load_error(folder)


@pytest.mark.parametrize("damage", ["truncated", "not an object", "missing"])
def test_invalid_manifest_is_named(tmp_path, damage):
    folder = copy_export(tmp_path)
    path = os.path.join(folder, "manifest.json")
    text = open(path).read()
    if damage == "missing":
        os.remove(path)
    else:
        with open(path, "w") as f:
            f.write(text[: len(text) // 2] if damage == "truncated" else "[1, 2]")
    message = load_error(folder)
    assert message.startswith(f"{path}: ") and "JSONDecodeError" not in message.split("(")[0]


def test_a_file_missing_from_the_manifest_is_refused(tmp_path):
    folder = copy_export(tmp_path)
    path = os.path.join(folder, "manifest.json")
    manifest = json.load(open(path))
    del manifest["files"]["plan_0.json"]
    json.dump(manifest, open(path, "w"))
    assert "plan_0.json: not listed in manifest.json" in load_error(folder)


def test_float64_input_is_refused_unless_cast_is_allowed(tmp_path):
    from attncc.backends.core.runtime import InputError, load_folder

    folder = rope_block()[2]
    x = np.random.default_rng(0).standard_normal((1, 9, HIDDEN))
    one_line_error(run_py(folder, tmp_path, inputs=[x]), "input 'x' is float64 but the model expects float32",
                   "--allow-cast")
    with pytest.raises(InputError, match="input 'x' is int32 but the model expects float32"):
        load_folder(folder).run([x.astype(np.int32)])
    got = load_folder(folder, allow_cast=True).run([x])[0].numpy()
    np.testing.assert_allclose(got, rope_block()[1](x.astype(np.float32)), rtol=1e-5, atol=1e-5)


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
