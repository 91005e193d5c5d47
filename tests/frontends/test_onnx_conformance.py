"""ONNX's own node conformance cases for Attention (23-25) and RotaryEmbedding (23), run through import
and the IR reference interpreter. The `_expanded` twins spell the op out in primitives; they must import
and match too, and `lift-attention` should re-fuse them into one Attention op."""
from __future__ import annotations

import pytest

from attncc.conformance import all_cases, case_family, is_expanded, run_case

SUPPORTED_FAMILIES = ("attention-23", "attention-24", "attention-25", "rotary_embedding-23")
CASES = {c.name: c for c in all_cases()}
DIRECT = [n for n, c in CASES.items() if case_family(c) in SUPPORTED_FAMILIES and not is_expanded(c)]
EXPANDED = [n for n, c in CASES.items() if case_family(c) in SUPPORTED_FAMILIES and is_expanded(c)]
UNSUPPORTED = [n for n, c in CASES.items() if case_family(c) in ("linear_attention", "flexattention")
               and not is_expanded(c)]
REFUSE_TARGET = 0.9


def test_the_conformance_suite_is_there():
    # guards against a silently empty parametrization (e.g. an onnx without these cases)
    assert len(DIRECT) >= 90 and len(EXPANDED) >= 90


@pytest.mark.parametrize("name", DIRECT)
def test_conformance_case_imports_and_matches(name):
    case = CASES[name]
    r = run_case(case)
    assert r.status == "pass", r.detail
    want = 0 if "rotary_embedding" in name else 1
    assert r.attention_ops == want, f"{r.attention_ops} Attention ops"


@pytest.mark.parametrize("name", EXPANDED)
def test_expanded_case_imports_and_matches(name):
    r = run_case(CASES[name])
    assert r.status == "pass", r.detail


def test_expanded_attention_cases_refuse_into_one_attention_op():
    """>= 90% of the spelled-out Attention twins become exactly one Attention op with matching outputs."""
    names = [n for n in EXPANDED if n.startswith("test_attention")]
    results = [run_case(CASES[n]) for n in names]
    fused = [r.name for r in results if r.status == "pass" and r.fused]
    missed = sorted(set(names) - set(fused))
    assert len(fused) / len(names) >= REFUSE_TARGET, (
        f"{len(fused)}/{len(names)} re-fused; not fused: {missed}")


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_linear_and_flex_attention_raise_a_clear_error(name):
    r = run_case(CASES[name])
    assert r.status == "error"
    assert "LinearAttention" in r.detail or "FlexAttention" in r.detail
    assert "Supported attention ops" in r.detail
