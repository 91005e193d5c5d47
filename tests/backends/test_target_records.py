"""Issue 23: one Target record per target, and the tile the tile pass records and the report prices is the tile
the generated kernel uses (read back from the kernel's metadata in the build's plan)."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import json
from pathlib import Path

import pytest

import attncc
from attncc import pipelines
from attncc.backends import TARGETS, get_backend, target_record
from attncc.backends.core.backend import TvmBackend
from attncc.backends.cuda.arch import ARCHES
from attncc.cost_models import get_hardware, list_hardware
from attncc.cost_models.capabilities import Capabilities
from attncc.cost_models.target import registered_targets, target_for_device
from attncc.ir import Graph
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec

CODEGEN = ["cpu", "cuda", "mobile-cpu", "mobile-gpu"]


def _graph(dtype: str, seq: int = 200) -> Graph:
    g = Graph("tile_agreement")
    vals = [g.add_input(n, dtype, (1, 4, seq, 64)) for n in ("query", "key", "value")]
    g.set_outputs([g.add1(Attention(spec=AttentionSpec(4, 4, 64, mask=MaskSpec(causal=True))), vals, name="attn")])
    return g


@pytest.mark.parametrize("name", [t for t, i in TARGETS.items() if i.record])
def test_every_target_has_one_record_with_its_device_units_and_pipeline(name):
    rec = target_record(name)
    hw = get_hardware(rec.device)
    assert rec.name == name and rec.backend == TARGETS[name].module
    assert rec.pipeline == pipelines.default_pipeline(name)
    if name not in ("reference", "cpu", "optical"):   # cpu: this host's cores; optical: one correlator
        assert rec.parallel_units == (hw.parallel_units or hw.level(hw.tile_level).units)
        assert f"decode-split-kv{{parallel_units={rec.parallel_units}}}" in rec.pipeline
    if name != "reference":
        assert f"tile{{target={rec.spec}}}" in rec.pipeline


def test_each_record_says_everything_its_target_is_and_the_backend_uses_it():
    """Issue 23 acceptance: from one file per target (backends/<target>/record.py) a reader lists everything the
    target is, and that is what get_backend(target) runs with (no second table says otherwise)."""
    assert set(registered_targets()) == {t for t, i in TARGETS.items() if i.record}
    for name in registered_targets():
        rec = target_record(name)
        backend = get_backend(name)
        if hasattr(backend, "plugin"):   # a shared backend reports its latest build's options: reset to the defaults
            backend.target({})
        assert rec.name == name == backend.name and rec.description and rec.description == backend.description
        module, cls = rec.backend.split(":")
        assert type(backend) is getattr(importlib.import_module(module), cls)
        assert dataclasses.is_dataclass(rec.options) and rec.options.__dataclass_params__.frozen
        assert isinstance(rec.capabilities, Capabilities) and rec.capabilities == backend.capabilities
        assert get_hardware(rec.device).name == rec.device == backend.hardware
        assert isinstance(rec.parallel_units, int) and rec.parallel_units >= 1
        assert rec.pipeline == pipelines.default_pipeline(name)
        if isinstance(backend, TvmBackend):   # code-generating targets: the TVM target the core builds for
            assert rec.tvm_target and backend.target({}) == dict(rec.tvm_target)
        for device in rec.devices:            # reports on these devices price this target's build
            assert get_hardware(device).name == device and target_for_device(device) == name
    # every catalog device a code-generating target builds for is priced as that target (no table elsewhere)
    assert {d for t in registered_targets() for d in target_record(t).devices} == \
        {d for d in list_hardware() if target_for_device(d) is not None}


def test_reports_price_a_device_as_the_target_whose_record_lists_it():
    """No device -> target table outside the records: analyze(hardware=d) groups kernels as the target whose record
    lists d in `devices` (cuda: every catalog entry of an arch it builds for, cuda/arch.py)."""
    from attncc.api import default_target

    assert {d: default_target(d) for d in ("host-cpu", "a100-80gb", "h100-sxm", "h200", "h800-sxm", "mobile-cpu",
                                           "mobile-gpu", "optical-4f")} == {
        "host-cpu": "cpu", "a100-80gb": "cuda", "h100-sxm": "cuda", "h200": "cuda", "h800-sxm": "cuda",
        "mobile-cpu": "mobile-cpu", "mobile-gpu": "mobile-gpu", "optical-4f": "optical"}
    assert set(target_record("cuda").devices) == {d for a in ARCHES.values() for d in a.devices}
    report = attncc.analyze(_graph("float16"), hardware="h800-sxm")
    assert report.grouping == "kernels of target cuda"


ROOT = Path(__file__).resolve().parents[2]
# where a device may be named: the records, the cuda arch table its record reads, the reference target's file
DEVICE_FILES = {"backends/cuda/arch.py", "backends/reference.py"}


def test_no_pass_plugin_or_core_file_names_a_device_or_an_sm_count():
    """Issue 23 item 1: outside backends/<target>/record.py (and the tables it reads) no pass, plugin or core file
    names a catalog device or writes an SM count; they read the Target record."""
    names = set()
    for device in list_hardware():
        spec = json.loads((ROOT / "cost_models" / "specs" / f"{device}.json").read_text())
        names |= {device, *spec.get("aliases", [])}
    names -= set(registered_targets()) | {"host", "4f"}     # target names, and aliases that are ordinary words
    sm_counts = {get_hardware(d).level("smem").units for d in list_hardware() if get_hardware(d).tile_level == "smem"}
    found = []
    for folder in ("ir", "attncc/passes", "backends"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if path.name == "record.py" or rel in DEVICE_FILES:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
                if (isinstance(value, str) and value in names) or (type(value) is int and value in sm_counts):
                    found.append(f"{rel}:{node.lineno}: {value!r}")
    assert not found, "device names / SM counts outside the Target records:\n" + "\n".join(found)


def test_cuda_arch_option_picks_the_device_its_sms_and_the_tile_rules():
    a100, h100 = target_record("cuda", {"arch": "sm_80"}), target_record("cuda", {"arch": "h100"})
    assert (a100.device, a100.parallel_units) == ("a100-80gb", get_hardware("a100-80gb").level("smem").units)
    assert (h100.device, h100.parallel_units) == ("h100-sxm", get_hardware("h100-sxm").level("smem").units)
    assert a100.tvm_target["arch"] == "sm_80" and h100.options.arch == "sm_90a"
    assert "tile{target=cuda:arch=sm_80}" in pipelines.default_pipeline("cuda", {"arch": "sm_80"})
    with pytest.raises(ValueError, match="sm_70"):
        target_record("cuda", {"arch": "sm_70"})


def _kernel_tile(target: str, kernel: dict) -> tuple[int, int]:
    """(q_block, kv_block) the generated kernel was built with, from its metadata in the plan."""
    sched = kernel.get("schedule", {})
    if target == "mobile-gpu":
        return kernel["q_block"], kernel["kv_block"]
    if target == "mobile-cpu":   # one task per q_block rows; every key of a row streams through L1
        return sched["rows_per_task"], sched["kv_block_recorded"]
    return sched["q_block"], sched["kv_block"]


def _check_agreement(target: str, dtype: str, options: dict) -> tuple[int, int, str]:
    cm = attncc.compile(_graph(dtype), target=target, options={"cache": False, **options})
    recorded = cm.graph.metadata["tiling"]["attn"]
    tile = (recorded["q_block"], recorded["kv_block"])
    rules = target_record(target, options).capabilities.tiles
    assert rules.accepts(*tile), (tile, rules)                       # the pass proposed a tile the kernel takes
    steps = [s for r in cm.executable.artifacts["program"].runners.values() for s in r.plan.steps
             if s["kind"] == "attention"]
    assert steps, "the attention kernel was not generated"
    for step in steps:
        assert _kernel_tile(target, step["kernel"]) == tile, step["kernel"]
    row = next(r for r in cm.report.rows if r.name == "attn" or "attn" in r.ops)   # per-op or kernel rows
    assert row.cost.details.get("tiling") == {"q_block": tile[0], "kv_block": tile[1]}
    return (*tile, recorded["target"])


@pytest.mark.parametrize("target", ["cpu", "mobile-cpu", "mobile-gpu"])
def test_recorded_priced_and_generated_tiles_agree(target):
    _check_agreement(target, "float32", {})


@pytest.mark.parametrize("arch,device", [("sm_80", "a100-80gb"), ("sm_90a", "h100-sxm")])
def test_cuda_recorded_priced_and_generated_tiles_agree(arch, device):
    *_, priced_on = _check_agreement("cuda", "float16", {"arch": arch})
    assert priced_on == device
