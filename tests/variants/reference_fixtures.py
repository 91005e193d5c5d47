"""Fixtures recorded from the authors' public code (run outside attncc, never copied into it).

Each .npz under fixtures/ holds the inputs, the weights (as the authors' module names them) and the authors'
output, plus a `meta` JSON string naming the source repository, commit, file, class and call. Tests load the
weights into attncc's module and check the module, the IR interpreter and the cpu target against `out`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta) of fixtures/<name>.npz."""
    with np.load(FIXTURES / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "meta"}
        meta = json.loads(str(z["meta"]))
    return arrays, meta
