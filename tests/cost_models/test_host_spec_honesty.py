"""The host-cpu spec says which CPU it was measured on; on another CPU a report says it is uncalibrated
here instead of naming a CPU the machine is not."""
from __future__ import annotations

import json

import pytest

from attncc.cost_models import analyze_graph, get_hardware
from attncc.cost_models import host_match
from attncc.cost_models.hardware import SPEC_DIR


@pytest.fixture(autouse=True)
def no_calibrated_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path))   # the shipped default, not a calibrated file


def _spec_host() -> dict:
    return json.loads((SPEC_DIR / "host-cpu.json").read_text())["host"]


def test_default_spec_names_the_host_it_was_measured_on(monkeypatch):
    host = _spec_host()
    monkeypatch.setattr(host_match, "cpu_model", lambda: host["cpu_model"])
    monkeypatch.setattr(host_match, "vector_isa", lambda: host["isa"])
    spec = get_hardware("host-cpu")
    assert host["cpu_model"] in spec.description
    assert host_match.UNCALIBRATED not in spec.description and spec.provenance == "default spec"


def test_another_cpu_reads_uncalibrated_and_never_names_the_spec_cpu(monkeypatch):
    monkeypatch.setattr(host_match, "cpu_model", lambda: "Intel(R) Xeon(R) Platinum 8480+")
    monkeypatch.setattr(host_match, "vector_isa", lambda: _spec_host()["isa"])
    spec = get_hardware("host-cpu")
    assert spec.description.startswith(host_match.UNCALIBRATED)
    assert spec.provenance == host_match.UNCALIBRATED
    from attncc import ir
    g = ir.Graph("mm")
    x = g.add_input("x", "float32", (64, 64))
    (y,) = g.add(ir.ops.MatMul(), [x, x])
    g.outputs.append(y)
    header = analyze_graph(g, hardware="host-cpu").to_text().splitlines()[0]
    # the measured CPU appears only as "measured on a CPU with ..., this machine has ...", never as this host
    assert host_match.UNCALIBRATED in header and "Zen 4" not in header and "Measured on" not in header
    assert "Intel(R) Xeon(R) Platinum 8480+" in header


def test_same_model_other_isa_is_also_uncalibrated(monkeypatch):
    monkeypatch.setattr(host_match, "cpu_model", lambda: _spec_host()["cpu_model"])
    monkeypatch.setattr(host_match, "vector_isa", lambda: "avx2")
    assert get_hardware("host-cpu").provenance == host_match.UNCALIBRATED
