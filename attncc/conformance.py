"""Run ONNX's own node conformance cases (attention, rotary embedding) through import + the IR interpreter,
or (`run_case_on_target`) through `attncc.compile` for a target and its generated code.

Used by tests/frontends/test_onnx_conformance*.py and benchmarks/onnx_conformance.py. A case passes when
every expected output matches `attncc.ir.run_graph` on the imported graph within the case's tolerance
(loosened for float16/bfloat16 outputs: the ONNX reference computes those in low precision while the
IR oracle computes in float64 and rounds once).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np

FAMILY_PATTERNS = {"attention": "attention", "rotary_embedding": "rotary_embedding"}
LOW_PRECISION_TOL = {"float16": (2e-2, 2e-2), "bfloat16": (5e-2, 5e-2)}


@dataclass
class CaseResult:
    name: str
    family: str
    expanded: bool
    status: str  # "pass", "mismatch", "error"
    attention_ops: int = 0
    detail: str = ""

    @property
    def fused(self) -> bool:
        return self.attention_ops == 1


@functools.lru_cache(maxsize=1)
def all_cases() -> tuple:
    """ONNX node test cases whose names mention attention or rotary_embedding (collection takes a few seconds)."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    return tuple(c for c in cases if "attention" in c.name or "rotary_embedding" in c.name)


def case_family(case) -> str:
    """attention-<opset>, rotary_embedding-<opset>, linear_attention, flexattention."""
    name = case.name
    opset = {o.domain: o.version for o in case.model.opset_import}.get("", 0)
    if "flexattention" in name:
        return "flexattention"
    if "linear_attention" in name:
        return "linear_attention"
    if "rotary_embedding" in name:
        return f"rotary_embedding-{opset}"
    return f"attention-{opset}"


def is_expanded(case) -> bool:
    return bool(re.search(r"_expanded(_ver\d+)?$", case.name))


def run_case(case, pipeline: str | None = None) -> CaseResult:
    """Import `case.model`, run every data set through the IR interpreter and compare."""
    from .ir import run_graph
    from .frontends.onnx_import import POST_IMPORT_PIPELINE, import_onnx

    res = CaseResult(case.name, case_family(case), is_expanded(case), "error")
    try:
        g = import_onnx(case.model, pipeline=POST_IMPORT_PIPELINE if pipeline is None else pipeline)
        res.attention_ops = len(g.attention_ops())
        for inputs, expected in case.data_sets:
            with np.errstate(all="ignore"):
                got = run_graph(g, list(inputs))
            for i, (e, a) in enumerate(zip(expected, got)):
                problem = compare(np.asarray(e), np.asarray(a), case.rtol, case.atol)
                if problem:
                    res.status, res.detail = "mismatch", f"output {i}: {problem}"
                    return res
        res.status = "pass"
    except Exception as e:  # a failing case is a result to report, not a crash
        res.detail = f"{type(e).__name__}: {e}"
    return res


def run_case_on_target(case, target: str, options: dict | None = None) -> CaseResult:
    """Compile `case.model` for `target` (its default pipeline, compile `options`) and compare every data
    set's outputs. Fallback warnings are not errors here: conformance is about numerics, whatever code runs."""
    import warnings

    from .api import compile as compile_model

    res = CaseResult(case.name, case_family(case), is_expanded(case), "error")
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            for inputs, expected in case.data_sets:
                cm = compile_model(case.model, list(inputs), target=target, options=options)
                got = cm(*inputs)
                got = list(got) if isinstance(got, (list, tuple)) else [got]
                res.attention_ops = len(cm.graph.attention_ops())
                if len(got) < len(expected):
                    res.status, res.detail = "mismatch", f"{len(got)} outputs, expected {len(expected)}"
                    return res
                for i, (e, a) in enumerate(zip(expected, got)):
                    problem = compare(np.asarray(e), np.asarray(a), case.rtol, case.atol)
                    if problem:
                        res.status, res.detail = "mismatch", f"output {i}: {problem}"
                        return res
        res.status = "pass"
    except Exception as e:  # a failing case is a result to report, not a crash
        res.detail = f"{type(e).__name__}: {e}"
    return res


def compare(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> str:
    """'' when equal within tolerance (NaNs must match), else a one-line description."""
    if expected.shape != actual.shape:
        return f"shape {actual.shape} != expected {expected.shape}"
    dt = str(expected.dtype)
    rtol, atol = LOW_PRECISION_TOL.get(dt, (rtol, atol))
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    if not np.array_equal(np.isnan(e), np.isnan(a)):
        return "NaN positions differ"
    ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if ok.all():
        return ""
    err = np.nanmax(np.abs(np.where(ok, 0, a - e)))
    return f"max abs error {err:.3g} over {int((~ok).sum())} elements (rtol={rtol}, atol={atol})"


def summarize(results: list[CaseResult]) -> dict[str, dict[str, int]]:
    """Per family (with '/expanded' suffix for the spelled-out twins): total, passed, fused."""
    out: dict[str, dict[str, int]] = {}
    for r in results:
        key = r.family + ("/expanded" if r.expanded else "")
        s = out.setdefault(key, {"total": 0, "passed": 0, "fused": 0})
        s["total"] += 1
        s["passed"] += r.status == "pass"
        s["fused"] += r.status == "pass" and r.fused
    return out
