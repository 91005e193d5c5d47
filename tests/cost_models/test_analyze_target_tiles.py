"""analyze(hardware=device) records and prices the tiles of the build of the target that builds for that device
(the tile pass of that target's default pipeline, with its tile rules), not tiles searched on the bare device.
No TVM build: the target's pipeline (what compile runs) is run here and its tile record compared."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import attncc
from attncc import pipelines
from attncc.api import kernel_rules
from attncc.cost_models import analyze_graph
from attncc.cost_models.target import target_record
from attncc.ir.passes import run_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from models import llama_block  # noqa: E402


@pytest.fixture(scope="module")
def block():
    model, inputs = llama_block()
    return model, inputs, attncc.import_model(model, inputs)


def _attention_tiles(graph):
    return {n.name: n.op.tiling for n in graph.topological() if n.op.op_name in ("Attention", "FusedAttention")}


@pytest.mark.parametrize("device,target", [("host-cpu", "cpu"), ("h100-sxm", "cuda")])
def test_analyze_tiles_are_the_target_builds_tiles(block, device, target):
    model, inputs, source = block
    built = run_pipeline(source, pipelines.default_pipeline(target))          # what compile(target=...) tiles
    analyzed = run_pipeline(source, pipelines.pipeline_for_hardware(device))  # what analyze(hardware=...) tiles
    assert analyzed.metadata["tiling"] == built.metadata["tiling"]
    assert _attention_tiles(analyzed) == _attention_tiles(built)
    caps = target_record(target).capabilities
    for name, tiling in _attention_tiles(built).items():  # the target's kernels accept the recorded tile
        assert caps.tiles.accepts(tiling.q_block, tiling.kv_block), (name, tiling)
    if target == "cpu":  # cpu Linear/MatMul: the register tile the kernel builds
        matmuls = [r for r in built.metadata["tiling"].values() if "m_block" in r]
        assert matmuls and all(r.get("register_tile") for r in matmuls)

    report = attncc.analyze(model, inputs, hardware=device)
    priced = analyze_graph(built, hardware=device, kernels=kernel_rules(target), target=target)
    assert [(r.name, r.cost.details.get("tiling")) for r in report.rows] == \
        [(r.name, r.cost.details.get("tiling")) for r in priced.rows]
    assert report.total_time_s == pytest.approx(priced.total_time_s, rel=1e-12)


def test_pricing_record_picks_the_build_for_the_device():
    assert pipelines.pricing_record("a100-80gb").spec == "cuda:arch=sm_80"   # an A100 runs the sm_80 build
    assert pipelines.pricing_record("h800-sxm").spec == "cuda"               # the sm_90a build (tiled for h100-sxm)
    assert pipelines.pricing_record("host-cpu").name == "cpu"
