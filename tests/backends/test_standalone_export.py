"""An exported folder runs with TVM's runtime and numpy only: no attncc, no torch, no TVM compiler library."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import attncc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
from models import TinyLlama, TinyLlamaPrefill  # noqa: E402

# runs in a fresh interpreter: attncc and torch cannot be imported, and the TVM compiler library must stay unloaded
RUNNER = textwrap.dedent("""
    import importlib.abc, json, os, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("attncc", "torch"):
                raise ImportError(f"{name} must not be needed to run an exported folder")
    sys.meta_path.insert(0, Block())
    os.environ["TVM_USE_RUNTIME_LIB"] = "1"
    folder, inputs_path, out_path = sys.argv[1:4]
    sys.path.insert(0, folder)
    import numpy as np
    import attncc_runtime as rt
    rt.size_thread_pool()
    model = rt.load_folder(folder)
    with np.load(inputs_path) as data:
        inputs = [data[f"arr_{i}"] for i in range(len(data.files))]
    outs = model.run(inputs)
    np.savez(out_path, *[o.numpy() for o in outs])
    maps = open("/proc/self/maps").read() if os.path.exists("/proc/self/maps") else ""
    print(json.dumps({"compiler_loaded": "libtvm_compiler" in maps}))
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    lm = TinyLlama(vocab=64, hidden=64, layers=2, heads=4, kv_heads=2, ffn=96).eval()
    ids = torch.randint(0, 64, (1, 9))
    seq = torch.export.Dim("seq", min=2, max=256)
    cm = attncc.compile(TinyLlamaPrefill(lm), (ids,), dynamic_shapes={"ids": {1: seq}})
    cm(ids)
    folder = tmp_path_factory.mktemp("export") / "tinyllama"
    cm.export(str(folder))
    return cm, lm, folder


def _run_standalone(folder, inputs, tmp_path, python=sys.executable) -> tuple[list[np.ndarray], dict]:
    np.savez(tmp_path / "inputs.npz", *inputs)
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([python, str(script), str(folder), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(tmp_path / "out.npz") as data:
        outs = [data[f"arr_{i}"] for i in range(len(data.files))]
    return outs, json.loads(done.stdout.strip().splitlines()[-1])


def test_folder_runs_without_attncc_torch_or_the_compiler(exported, tmp_path):
    cm, lm, folder = exported
    names = sorted(os.listdir(folder))
    assert [n for n in names if n.endswith(".so")] == ["kernels_0.so"]   # one library: every kernel of the build
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["versions"]["apache-tvm"] and manifest["inputs"][0]["shape"] == [1, "seq"]
    assert set(manifest["files"]) >= {"kernels_0.so", "plan_0.json", "attncc_runtime.py", "run.py", "README.md"}
    ids = np.random.default_rng(1).integers(0, 64, (1, 23)).astype("int64")   # a new length: no build exists for it
    outs, info = _run_standalone(folder, [ids], tmp_path)
    assert not info["compiler_loaded"]
    with torch.no_grad():
        want = TinyLlamaPrefill(lm)(torch.from_numpy(ids))
    for got, w in zip(outs, want):
        np.testing.assert_allclose(got, w.numpy(), rtol=1e-4, atol=1e-4)
    mine = cm(torch.from_numpy(ids))
    np.testing.assert_allclose(outs[0], mine[0].numpy(), rtol=0, atol=0)   # the same kernels as attncc's own run


def test_load_rejects_a_modified_file_naming_it(exported, tmp_path):
    import shutil

    _, _, folder = exported
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    lib = copy / "kernels_0.so"
    lib.write_bytes(lib.read_bytes()[:2048])
    with pytest.raises(OSError, match="kernels_0.so"):
        attncc.load(str(copy))


@pytest.mark.slow
def test_folder_runs_in_a_fresh_venv_with_only_tvm_and_numpy(exported, tmp_path):
    """The acceptance check: a venv holding only apache-tvm, apache-tvm-ffi and numpy (pip from the index)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pins = ["apache-tvm==0.27.0.post1", "apache-tvm-ffi<0.1.15", "numpy"]
    subprocess.run([py, "-m", "pip", "install", "-q", *pins], check=True, timeout=1200)
    _, lm, folder = exported
    ids = np.random.default_rng(2).integers(0, 64, (1, 31)).astype("int64")
    outs, _ = _run_standalone(folder, [ids], tmp_path, python=py)
    with torch.no_grad():
        want = TinyLlamaPrefill(lm)(torch.from_numpy(ids))[0]
    np.testing.assert_allclose(outs[0], want.numpy(), rtol=1e-4, atol=1e-4)
