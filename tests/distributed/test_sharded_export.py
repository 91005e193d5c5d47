"""A sharded export (one folder per rank + manifest + run_distributed.py) runs under torchrun with TVM's runtime,
numpy and torch.distributed, without attncc; a wrong world size, a modified file or a folder from another export
is refused before any kernel runs."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from attncc.distributed import launch
from tests.distributed import jobs

pytestmark = pytest.mark.slow   # a 2-rank compile plus torchrun jobs: ~1-2 min


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    os.environ["ATTNCC_CACHE_DIR"] = str(root / "cache")
    assert launch(jobs.export_tp2_block, 2, str(root / "folder")) < 1e-5
    return root


def _torchrun(root, folder="folder", nproc=2, python=sys.executable, extra_env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update({"TVM_USE_RUNTIME_LIB": "1", **(extra_env or {})})
    return subprocess.run([python, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
                           os.path.join(folder, "run_distributed.py"), "--inputs", "inputs.npz",
                           "--check", "expected.npz", "--timeout", "30"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_exported_ranks_run_under_torchrun_without_attncc(exported):
    manifest = json.loads((exported / "folder" / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["plan"]["tp"] == 2
    assert all(name in manifest["files"] for name in ("run_distributed.py", "rank0/rank.json", "rank1/rank.json"))
    text = (exported / "folder" / "run_distributed.py").read_text() + \
        (exported / "folder" / "attncc_collectives.py").read_text()
    assert not re.search(r"^\s*(import|from) attncc(\.|\s|$)", text, re.M)       # attncc_checks etc. are its own files
    done = _torchrun(exported)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "max abs difference vs expected.npz" in done.stdout


def test_a_world_size_other_than_the_plan_is_refused(exported):
    done = _torchrun(exported, nproc=1)
    assert done.returncode != 0
    assert "compiled for 2 ranks" in done.stdout + done.stderr


def test_a_modified_file_or_a_rank_folder_from_another_export_is_refused(exported, tmp_path):
    copy = tmp_path / "folder"
    shutil.copytree(exported / "folder", copy)
    shutil.copy(exported / "inputs.npz", tmp_path)
    shutil.copy(exported / "expected.npz", tmp_path)
    rank_json = copy / "rank1" / "rank.json"
    data = json.loads(rank_json.read_text())
    data["export_id"] = "0" * 32                            # rank1/ as another export would have written it
    rank_json.write_text(json.dumps(data))
    done = _torchrun(tmp_path)
    assert done.returncode != 0 and "rank1" in done.stdout + done.stderr and "sha256" in done.stdout + done.stderr
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["rank1/rank.json"] = hashlib.sha256(rank_json.read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    done = _torchrun(tmp_path)
    assert done.returncode != 0 and "comes from another export" in done.stdout + done.stderr


def test_exported_ranks_run_in_a_fresh_venv_with_only_tvm_numpy_and_torch(exported, tmp_path):
    """The acceptance check: a venv holding only apache-tvm, apache-tvm-ffi, numpy and torch."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    import torch

    pins = ["apache-tvm==0.27.0.post1", "apache-tvm-ffi<0.1.15", "numpy", f"torch=={torch.__version__.split('+')[0]}"]
    subprocess.run([py, "-m", "pip", "install", "-q", *pins], check=True, timeout=1800)
    done = _torchrun(exported, python=py)
    assert done.returncode == 0, done.stdout + done.stderr
