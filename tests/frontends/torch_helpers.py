"""Helpers for the torch frontend tests: import a model and compare the IR interpreter with eager torch."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # make `tests.models` importable however pytest was started
    sys.path.insert(0, str(ROOT))

from attncc.frontends.torch_import import import_torch  # noqa: E402
from attncc.ir import run_graph  # noqa: E402


def eager_outputs(model, inputs) -> list[np.ndarray]:
    with torch.no_grad():
        out = model(*inputs)
    out = out if isinstance(out, (tuple, list)) else (out,)
    return [o.numpy() for o in out]


def assert_matches_eager(graph, model, inputs, rtol=1e-4, atol=1e-5) -> None:
    """run_graph(graph) equals the eager module on `inputs` (fp32 tolerances)."""
    got = run_graph(graph, [t.numpy() for t in inputs])
    want = eager_outputs(model, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


__all__ = ["import_torch", "assert_matches_eager", "eager_outputs", "run_graph"]
