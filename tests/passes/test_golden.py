"""Golden before/after IR per pass, numerics (interpreter before == after) and no-op checks.

Regenerate reviewed goldens with ATTNCC_UPDATE_GOLDEN=1 pytest tests/passes/test_golden.py.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import attncc  # noqa: F401  (registers target-aware passes)
from attncc.ir import parse_ir, print_ir, run_graph
from attncc.ir.passes import PASS_REGISTRY, run_pipeline

from .cases import GOLDEN_CASES, plain_mlp
from .layers import feed

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ATTNCC_UPDATE_GOLDEN") == "1"


def _folder(pipeline: str) -> Path:
    return GOLDEN / pipeline.split("{")[0]


@pytest.mark.parametrize("pipeline,case", list(GOLDEN_CASES), ids=[c for _, c in GOLDEN_CASES])
def test_golden_before_after(pipeline, case):
    before_path, after_path = _folder(pipeline) / f"{case}.before.ir", _folder(pipeline) / f"{case}.after.ir"
    built = GOLDEN_CASES[(pipeline, case)]()  # the .ir text has no tensor data: constants come from the builder
    if UPDATE:
        before_path.parent.mkdir(parents=True, exist_ok=True)
        before_path.write_text(print_ir(built))
    before = parse_ir(before_path.read_text(), constants=built.constants)
    assert print_ir(before) == before_path.read_text()
    after = run_pipeline(before, pipeline)
    if UPDATE:
        after_path.write_text(print_ir(after))
    assert print_ir(after) == after_path.read_text()
    assert print_ir(after) != print_ir(before), f"{pipeline} should change {case}"
    inputs = feed(before, seed=1, dims={"S": 7})
    for want, got in zip(run_graph(before, inputs), run_graph(after, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


FUSION_PASSES = ["canonicalize-attention", "fold-repeat-kv", "fuse-qkv", "fuse-attention",
                 "fuse-attention{epilogue=residual}", "decode-split-kv", "cse", "mla-absorb", "fold-kv-cache",
                 "lift-rotary"]


@pytest.mark.parametrize("pipeline", FUSION_PASSES)
def test_pass_leaves_graph_without_its_pattern_unchanged(pipeline):
    g = plain_mlp()
    assert print_ir(run_pipeline(g, pipeline)) == print_ir(g)


@pytest.mark.parametrize("pipeline,case", list(GOLDEN_CASES), ids=[c for _, c in GOLDEN_CASES])
def test_pass_is_idempotent(pipeline, case):
    once = run_pipeline(GOLDEN_CASES[(pipeline, case)](), pipeline)
    assert print_ir(run_pipeline(once, pipeline)) == print_ir(once)


def test_every_fusion_pass_is_registered():
    for p in FUSION_PASSES + ["tile"]:
        assert p.split("{")[0] in PASS_REGISTRY
