"""benchmarks/gpu_check.py on a machine without a GPU: --help works and `run` exits 2 saying no GPU is present."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "gpu_check.py")


def test_help_and_no_gpu_message(tmp_path):
    import torch

    done = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "prepare" in done.stdout and "run" in done.stdout
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: `run` would run the check")
    done = subprocess.run([sys.executable, SCRIPT, "run", "--artifacts", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "no CUDA GPU present" in done.stderr, done.stderr
