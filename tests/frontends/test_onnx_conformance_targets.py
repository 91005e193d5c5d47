"""ONNX's own conformance cases for the attention family, through `attncc.compile` on every registered
target that executes on this machine: the generated code, not only the interpreter, must match ONNX's
expected outputs (tests/frontends/test_onnx_conformance.py covers import + interpreter).

Cases: every Attention (23-25), RotaryEmbedding (23), LinearAttention and FlexAttention case the installed
onnx ships, with their `_expanded` twins. The ones attncc does not support must fail with a clear error
(asserted below, and listed in UNSUPPORTED_*). The full sweep is slow (a build per case); the default run
checks a subset (the generic TE attention kernel with kv lengths and a bool mask, in fp32 and fp16 with
GQA; an expanded partial rotary embedding with its pass-through slice).
"""
from __future__ import annotations

import pytest

from attncc.backends import TARGETS, target_capabilities
from attncc.conformance import all_cases, case_family, is_expanded, run_case_on_target

CASES = {c.name: c for c in all_cases()}
# direct LinearAttention / FlexAttention: no IR equivalent (recurrent state; ONNX subgraph score mods)
UNSUPPORTED_DIRECT = sorted(n for n, c in CASES.items()
                            if case_family(c) in ("linear_attention", "flexattention") and not is_expanded(c))
# expanded LinearAttention: spelled out with Scan, which the ONNX frontend has no converter for
UNSUPPORTED_SCAN = sorted(n for n, c in CASES.items() if case_family(c) == "linear_attention" and is_expanded(c))
SUPPORTED = sorted(set(CASES) - set(UNSUPPORTED_DIRECT) - set(UNSUPPORTED_SCAN))
FAST = ["test_attention_4d_causal_nonpad_batch_prefill",     # generic TE kernel: kv lengths + bool mask
        "test_attention_4d_gqa_causal_nonpad_decode_fp16",   # same path in fp16, GQA
        "test_rotary_embedding_no_position_ids_rotary_dim_expanded"]  # partial rotary (pass-through slice)


def _target_params() -> list:
    """Every registered target; those that cannot execute here are skipped with the reason."""
    out = []
    for name, info in TARGETS.items():
        marks = []
        if info.status != "available":
            marks.append(pytest.mark.skip(reason=f"target {name!r} is {info.status}, not implemented"))
        else:
            caps = target_capabilities(name)
            if caps is not None and not caps.runs_here:
                marks.append(pytest.mark.skip(reason=f"target {name!r} generates code but cannot execute on this "
                                                     f"machine (Capabilities.runs_here is False)"))
        out.append(pytest.param(name, marks=marks, id=name))
    return out


TARGET_PARAMS = _target_params()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "conformance-cache"))


def test_the_case_lists_are_there():
    # guards against a silently empty parametrization (an onnx without these cases) and stale subset names
    fams = {case_family(CASES[n]) for n in SUPPORTED}
    assert {"attention-23", "attention-24", "attention-25", "rotary_embedding-23", "flexattention"} <= fams
    assert len(SUPPORTED) >= 200 and len(UNSUPPORTED_DIRECT) >= 20 and UNSUPPORTED_SCAN
    assert set(FAST) <= set(SUPPORTED)
    assert any(t.values[0] == "cpu" and not t.marks for t in TARGET_PARAMS), "cpu must execute here"


# the optical target simulates an analog device: quantization and shot/read noise are its physics, not
# compiler errors, so conformance checks its mapping in the ideal limit (both switched off)
TARGET_OPTIONS = {"optical": {"quantize": False, "noise": False}}


def _check(name: str, target: str) -> None:
    r = run_case_on_target(CASES[name], target, TARGET_OPTIONS.get(target))
    if (target == "mobile-gpu" and r.detail.startswith("NoOpenClDeviceError") and "cl_khr_fp16" in r.detail):
        pytest.skip(f"the OpenCL device here cannot run fp16 kernels: {r.detail}")
    assert r.status == "pass", f"{name} on {target}: {r.detail}"


def _check_unsupported(name: str, target: str) -> None:
    r = run_case_on_target(CASES[name], target, TARGET_OPTIONS.get(target))
    assert r.status == "error", f"{name} unexpectedly ran on {target}"
    if name in UNSUPPORTED_SCAN:
        assert "UnsupportedONNXOpError" in r.detail and "op Scan" in r.detail and "Supported ops" in r.detail, r.detail
    else:
        assert "ONNXImportError" in r.detail and "Supported attention ops" in r.detail, r.detail
        assert ("LinearAttention" if "linear" in name else "FlexAttention") in r.detail, r.detail


@pytest.mark.parametrize("target", TARGET_PARAMS)
@pytest.mark.parametrize("name", FAST)
def test_conformance_subset_on_target(target, name):
    _check(name, target)


@pytest.mark.parametrize("target", TARGET_PARAMS)
def test_unsupported_cases_give_a_clear_error(target):
    """One of each unsupported kind by default; every one under the slow sweep below."""
    for name in (UNSUPPORTED_DIRECT[0], [n for n in UNSUPPORTED_DIRECT if "flex" in n][0], UNSUPPORTED_SCAN[0]):
        _check_unsupported(name, target)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGET_PARAMS)
@pytest.mark.parametrize("name", SUPPORTED)
def test_every_conformance_case_on_target(target, name):
    _check(name, target)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGET_PARAMS)
@pytest.mark.parametrize("name", UNSUPPORTED_DIRECT + UNSUPPORTED_SCAN)
def test_every_unsupported_case_gives_a_clear_error(target, name):
    _check_unsupported(name, target)
