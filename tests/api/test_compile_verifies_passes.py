"""attncc.compile verifies the optimized graph once instead of after every pass, and still names the pass that
broke a graph (the pipeline runs again verifying after each pass when anything fails)."""
from __future__ import annotations

from pathlib import Path

import pytest

from attncc import ir
from attncc.api import _run_passes
from attncc.ir.passes import parse_pipeline, run_pipeline
from attncc.ir.passes.base import Pass

GOLDEN = Path(__file__).parent.parent / "passes" / "golden"


class Breaker(Pass):
    """Drops the graph's constants: the result no longer verifies."""
    name = "breaker"

    def run(self, graph):
        graph.constants.clear()
        return graph


class CrashesOnBrokenInput(Pass):
    """Fails (not a verifier error) on the graph Breaker left: without per-pass checks this would be the error."""
    name = "crasher"

    def run(self, graph):
        if not graph.constants:
            raise KeyError("a constant the previous pass removed")
        return graph


def graph():
    return ir.parse_ir((GOLDEN / "constant_fold" / "transposed_weight.before.ir").read_text())


def test_a_valid_pipeline_gives_the_per_pass_verified_result():
    assert ir.print_ir(_run_passes(graph(), "canonicalize,dce", None)) == \
        ir.print_ir(run_pipeline(graph(), "canonicalize,dce"))


@pytest.mark.parametrize("tail", [[], [CrashesOnBrokenInput()]], ids=["result-invalid", "later-pass-crashes"])
def test_a_broken_graph_is_named_by_the_pass_that_broke_it(tail):
    with pytest.raises(ir.IRError, match="after pass 'breaker'"):
        _run_passes(graph(), parse_pipeline("canonicalize") + [Breaker()] + tail, None)
