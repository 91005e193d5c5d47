"""The cost report prices the kernels a build launches: one row per kernel of the target's plan (same grouping
decision, attncc.ir.kernels), views free; checked against the built plan of every executing target."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import attncc
from attncc.cost_models import analyze_graph
from attncc.ir.passes import run_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from models import DecoderLayer, llama_block  # noqa: E402

TARGETS = ["cpu", "cuda", "mobile-cpu", "mobile-gpu"]
VIEW_OPS = {"Reshape"}


@pytest.fixture(scope="module")
def sources():
    """The example block, and one decoder layer with a KV cache (past 8, 4 new tokens): small, imported once."""
    model, (x,) = llama_block()
    torch.manual_seed(0)
    layer = DecoderLayer(64, 4, 2, 128).eval()
    cached = (torch.randn(1, 4, 64), torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16))
    return {"block": attncc.import_model(model, (x[:1, :16],)), "cached": attncc.import_model(layer, cached)}


def _built(source, target: str):
    from attncc import pipelines
    from attncc.backends import get_backend
    from attncc.backends.core.builder import build_plan
    from attncc.backends.core.fusion import fusion_rules
    from attncc.backends.core.program import decompose_variants

    backend = get_backend(target)
    graph = decompose_variants(run_pipeline(source, pipelines.default_pipeline(target)))
    plan, _ = build_plan(graph, [tuple(v.shape) for v in graph.inputs], backend.target({}), {}, backend.plugin)
    return graph, plan, fusion_rules(backend.plugin), backend.hardware


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("model", ["block", "cached"])
def test_report_kernels_are_the_plans_launches(sources, model, target):
    graph, plan, rules, hardware = _built(sources[model], target)
    report = analyze_graph(graph, hardware=hardware, kernels=rules, target=target)
    launches = [s for s in plan.steps if s["kind"] in ("call", "attention", "reference")]
    assert report.kernel_count == len(launches) == len(report.rows)
    # the same kernels in the same order: each row's last IR op is the node the plan step lowers
    assert [r.ops[-1] for r in report.rows] == [s["node"] for s in launches]
    assert [r.kind.split("+") for r in report.rows if "." not in r.kind] == \
        [s["op"].split("+") for s in launches if "." not in s["op"]]
    fused = {n for r in report.rows for n in r.ops}
    views = [n.name for n in graph.nodes if n.op.op_name in VIEW_OPS]
    assert views and not fused & set(views)          # views are never a launch
    assert all(r.cost.launch_s > 0 for r in report.rows)
    # fusion really merged ops: fewer kernels than priced IR ops
    priced_ops = [n for n in graph.nodes if n.op.op_name not in VIEW_OPS | {"Constant"}]
    assert len(report.rows) < len(priced_ops)


def test_shape_generic_build_folds_the_qkv_and_rope_table_slices():
    """The example block exported with dynamic batch/seq (as the decode report prices it): its shape-generic
    cpu plan runs no Slice kernel and launches what the report prices."""
    from torch.export import Dim

    from attncc import pipelines
    from attncc.backends import get_backend
    from attncc.backends.core.builder import build_plan
    from attncc.backends.core.fusion import fusion_rules

    model, (x,) = llama_block()
    x = x[:, :32]
    dyn = ({0: Dim("batch", min=1, max=64), 1: Dim("seq", min=2, max=127)},)
    source = attncc.import_model(model, (x,), dynamic_shapes=dyn)
    cpu = get_backend("cpu")
    graph = run_pipeline(source, pipelines.default_pipeline("cpu"))
    assert graph.find("Slice")                                          # the packed QKV thirds, the RoPE rows
    plan, _ = build_plan(graph, [tuple(x.shape)], cpu.target({}), {}, cpu.plugin, generic=True)
    assert not any(s.get("op") == "Slice" for s in plan.steps)
    report = analyze_graph(graph, hardware="host-cpu", kernels=fusion_rules(cpu.plugin), target="cpu",
                           dims={"batch": 2, "seq": 32})
    assert report.kernel_count == len(plan.steps)


@pytest.mark.slow
def test_folded_slices_compute_what_torch_computes_at_two_sizes():
    """One shape-generic cpu build of the example block (QKV thirds and RoPE rows folded) at two sizes vs torch."""
    from torch.export import Dim

    model, (x,) = llama_block()
    x = x[:, :32]
    dyn = ({0: Dim("batch", min=1, max=64), 1: Dim("seq", min=2, max=127)},)
    cm = attncc.compile(model, (x,), target="cpu", dynamic_shapes=dyn)
    with torch.no_grad():
        for shape in ((2, 32, 256), (1, 7, 256)):
            inp = torch.randn(*shape)
            got = cm(inp)
            got = got[0] if isinstance(got, (list, tuple)) else got
            torch.testing.assert_close(torch.as_tensor(got), model(inp), rtol=1e-4, atol=1e-4)


def test_decode_report_of_the_example_block_prices_kernels_not_ops():
    model, (x,) = llama_block()
    kernels = attncc.analyze(model, (x,), hardware="h100-sxm", phase="decode", batch=16, seq=128)
    assert kernels.grouping == "kernels of target cuda"
    assert not any(r.kind in VIEW_OPS | {"Slice"} for r in kernels.rows)   # QKV thirds and RoPE rows folded
    assert sum(len(r.ops) for r in kernels.rows) > kernels.kernel_count   # not a launch per IR op
    norm = [r for r in kernels.rows if r.kind == "RMSNorm"]
    assert len(norm) == 2 and all(len(r.ops) == 1 for r in norm)   # each spelled-out RMSNorm lifted: one kernel
    # CUDA graphs: the same kernels, each launch priced as a graph replay (spec's launch_graph_s)
    graphs = attncc.analyze(model, (x,), hardware="h100-sxm", phase="decode", batch=16, seq=128, cuda_graphs=True)
    assert graphs.kernel_count == kernels.kernel_count and graphs.cuda_graphs
    saved = sum(r.cost.launch_s for r in kernels.rows) - sum(r.cost.launch_s for r in graphs.rows)
    assert saved == pytest.approx(kernels.kernel_count * (4e-6 - 1.5e-6), rel=1e-6)
    with pytest.raises(ValueError, match="CUDA-graph launch"):
        analyze_graph(sources_graph(), hardware="host-cpu", cuda_graphs=True)


def sources_graph():
    g = attncc.ir.Graph("tiny")
    x = g.add_input("x", "float32", (2, 4))
    g.set_outputs([g.add1(attncc.ir.Unary("exp"), [x])])
    return g


def _small_graph():
    """exp(x @ W + r) -> reshape, and tanh(r): one matmul kernel (add, exp: its epilogue), a free view, one
    tanh kernel."""
    import numpy as np

    from attncc import ir

    g = ir.Graph("small")
    x, r = g.add_input("x", "float32", (4, 8, 16)), g.add_input("r", "float32", (4, 8, 32))
    w = g.add_constant(np.ones((16, 32), np.float32), "w")
    y = g.add1(ir.Binary("add"), [g.add1(ir.Linear(), [x, w]), r])
    g.set_outputs([g.add1(ir.Reshape((4, 256)), [g.add1(ir.Unary("exp"), [y])]), g.add1(ir.Unary("tanh"), [r])])
    return g


def test_group_pricing_and_html_per_kernel(tmp_path):
    import base64
    import re

    from attncc.cost_models.html_report import time_by_class
    from attncc.ir.kernels import FusionRules

    g = _small_graph()
    per_op = analyze_graph(g, hardware="h100-sxm")
    kernels = analyze_graph(g, hardware="h100-sxm", kernels=FusionRules(), target="cuda")
    assert sorted(r.kind for r in kernels.rows) == ["Linear+Binary+Unary", "Unary"] and kernels.kernel_count == 2
    mm = next(r for r in kernels.rows if r.kernel_class == "matmul")
    assert mm.ops == [n.name for n in g.nodes if n.op.op_name in ("Linear", "Binary")] + \
        [n.name for n in g.nodes if n.op.op_name == "Unary" and n.op.fn == "exp"]
    # the fused epilogue never round-trips HBM: the group moves exactly two intermediates (4*8*32 fp32, each
    # written once and read once) less than its ops priced alone
    ops = {r.name: r.cost.main_bytes for r in per_op.rows}
    assert mm.cost.main_bytes == sum(ops[n] for n in mm.ops) - 2 * 2 * 4 * 8 * 32 * 4
    assert mm.cost.launch_s == 4e-6          # one launch for the group
    classes = time_by_class(kernels)
    assert set(classes) == {"matmul", "injective"}
    assert sum(t["work"] + t["launch"] for t in classes.values()) == pytest.approx(kernels.total_time_s)
    page = tmp_path / "k.html"
    kernels.to_html(str(page))
    text = page.read_text()
    assert len(re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]{1000,})"', text)) == 2   # roofline + class bar
    assert "time per kernel class" in text and "Linear+Binary+Unary" in text
    assert all(base64.b64decode(m)[:4] == b"\x89PNG" for m in re.findall(r'base64,([A-Za-z0-9+/=]+)"', text))
