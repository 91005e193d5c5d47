"""Golden before/after tests for canonicalize, constant-fold and dce, with numerics and no-op checks."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from attncc import ir
from attncc.ir.passes import PipelineError, parse_pipeline, run_pipeline

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("ATTNCC_UPDATE_GOLDEN") == "1"

CASES = [("canonicalize", "casts_reshapes", "canonicalize"),
         ("constant_fold", "transposed_weight", "constant-fold"),
         ("dce", "dead_branch", "dce")]


def random_inputs(g: ir.Graph, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [[3 if isinstance(d, str) else d for d in v.shape] for v in g.inputs]
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


@pytest.mark.parametrize("folder,case,pipeline", CASES)
def test_golden(folder, case, pipeline):
    before = ir.parse_ir((GOLDEN / folder / f"{case}.before.ir").read_text())
    before.verify()
    after = run_pipeline(before, pipeline)
    path = GOLDEN / folder / f"{case}.after.ir"
    if UPDATE or not path.exists():
        path.write_text(ir.print_ir(after))
    assert ir.print_ir(after) == path.read_text()
    x = random_inputs(before)
    for a, b in zip(ir.run_graph(before, x), ir.run_graph(after, x)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pipeline", ["canonicalize", "constant-fold", "dce"])
def test_passes_leave_clean_graphs_unchanged(pipeline):
    text = (GOLDEN / "dce" / "dead_branch.after.ir").read_text()
    g = ir.parse_ir(text)
    assert ir.print_ir(run_pipeline(g, pipeline)) == text


def test_run_pipeline_does_not_mutate_its_input_and_dumps_ir(tmp_path):
    g = ir.parse_ir((GOLDEN / "canonicalize" / "casts_reshapes.before.ir").read_text())
    text = ir.print_ir(g)
    run_pipeline(g, "canonicalize,dce", dump_dir=str(tmp_path))
    assert ir.print_ir(g) == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00-input.ir", "01-canonicalize.ir", "02-dce.ir"]


@pytest.mark.parametrize("text,fragment", [
    ("canonicalize,nope", "unknown pass 'nope'"),
    ("canonicalize{bogus=1}", "pass 'canonicalize' has no option 'bogus'"),
    ("canonicalize{max_iterations=many}", "option 'max_iterations' expects"),
    ("canonicalize{max_iterations}", "must be key=value"),
    ("canonicalize{max_iterations=2", "unbalanced braces"),
])
def test_pipeline_errors_name_pass_and_option(text, fragment):
    with pytest.raises(PipelineError, match=fragment):
        parse_pipeline(text)


def test_verifier_runs_between_passes():
    from attncc.ir.passes.base import Pass

    class Breaker(Pass):
        name = "breaker"

        def run(self, graph):
            graph.constants.clear()
            return graph

    g = ir.parse_ir((GOLDEN / "constant_fold" / "transposed_weight.before.ir").read_text())
    with pytest.raises(ir.IRError, match="after pass 'breaker'"):
        run_pipeline(g, [Breaker()])
