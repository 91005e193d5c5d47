"""cpu matmuls: the register tile the tile pass records is the one the cost model prices and the kernel builds;
Linear kernels with row/column tails, decode rows and fused epilogues match torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import attncc
from attncc import ir
from attncc.backends.core.cache import CompileCache
from attncc.backends.cpu.backend import CpuBackend
from attncc.backends.cpu.capabilities import cpu_capabilities
from attncc.backends.cpu.packing import PANEL
from attncc.cost_models.register_tile import register_tile
from attncc.ir.ops import Activation, Binary, Linear
from attncc.ir.passes import run_pipeline
from attncc.ir.passes.pipelines import target_pipeline

try:
    from .cpu_graphs import llama_block, rng_arrays
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import llama_block, rng_arrays


@pytest.fixture
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    return CpuBackend(cache=CompileCache())


def built_tile(func) -> tuple[int, int]:
    """(rows, accumulator columns) of a scheduled matmul kernel: its unrolled row loop and vectorized column
    loop around the accumulator update (a 1-row tile has no row loop)."""
    from tvm import s_tir, tirx

    sch = s_tir.Schedule(func)
    loops = [sch.get(x) for x in sch.get_loops(sch.get_sblock("acc_update"))]
    rows = [int(x.extent) for x in loops if x.kind == tirx.ForKind.UNROLLED]
    cols = [int(x.extent) for x in loops if x.kind == tirx.ForKind.VECTORIZED]
    return (rows[-1] if rows else 1), cols[-1]


@pytest.mark.parametrize("seq", [12, pytest.param(16, marks=pytest.mark.slow)])   # 6-row tiles; 8 (the default)
def test_recorded_priced_and_built_tiles_are_the_same(backend, seq):
    graph = run_pipeline(llama_block(hidden=64, heads=4, kv_heads=2, seq=seq, ffn=96), target_pipeline("cpu", 2))
    record = graph.metadata["tiling"]
    caps = cpu_capabilities()
    assert caps.tiles.matmul_cols == PANEL   # the packed panels are the tile's columns
    priced = {r.name: r.cost.details["tile"] for r in attncc.analyze(graph, hardware="host-cpu", per_op=True).rows
              if r.kind == "Linear"}
    runner = next(iter(backend.lower(graph, {}).artifacts["program"].runners.values()))
    # the plan's matmul kernels in order: fused qkv, o_proj (+residual), gate/up (one gated kernel), down (+residual)
    kernels = [s["func"] for s in runner.plan.steps if s["kind"] == "call" and "Linear" in s["op"]]
    nodes = ["qkv", "o_proj", "gate_proj", "down_proj"]
    assert len(kernels) == len(nodes)
    for node, func in zip(nodes, kernels):
        rec = record[node]
        assert rec["register_tile"] and rec["target"] == "host-cpu"
        recorded = (rec["m_block"], rec["n_block"])
        assert recorded == register_tile(seq, 32, caps) and recorded[0] == (6 if seq == 12 else 8)
        assert priced[node] == recorded, node
        assert built_tile(runner.plan.funcs[func]) == recorded, node


def test_kernel_builds_the_recorded_tile_not_its_own(backend):
    for rows, built in ((4, (4, 32)), (5, (8, 32))):   # 4: a record the rule would not choose (it says 8); 5: one
        graph = run_pipeline(_linear("residual", 16, 64, 64), target_pipeline("cpu", 2))   # the kernel cannot build
        graph.metadata["tiling"]["fc"]["m_block"] = rows                                   # (16 % 5): the rule's
        runner = next(iter(backend.lower(graph, {}).artifacts["program"].runners.values()))
        assert built_tile(next(iter(runner.plan.funcs.values()))) == built


def _linear(kind: str, m: int, k: int, n: int) -> ir.Graph:
    rng = np.random.default_rng(3)
    g = ir.Graph(kind)
    x = g.add_input("x", "float32", (1, m, k))

    def w(name):
        return g.add_constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), name)

    if kind == "gated":
        y = g.add1(Binary("mul"), [g.add1(Activation("silu"), [g.add1(Linear(), [x, w("wg")], name="gate")]),
                                   g.add1(Linear(), [x, w("wu")], name="up")], name="y")
    elif kind == "bias_gelu":
        b = g.add_constant(rng.standard_normal(n).astype(np.float32), "b")
        y = g.add1(Activation("gelu"), [g.add1(Linear(has_bias=True), [x, w("w"), b], name="fc")], name="y")
    else:
        y = g.add1(Binary("add"), [g.add1(Linear(), [x, w("w")], name="fc"), g.add_input("r", "float32", (1, m, n))],
                   name="y")
    g.set_outputs([y])
    return g


def _torch(kind: str, g: ir.Graph, xs):
    c = {k: torch.from_numpy(np.asarray(v)) for k, v in g.constants.items()}
    t = [torch.from_numpy(a) for a in xs]
    if kind == "gated":
        return torch.nn.functional.silu(t[0] @ c["wg"]) * (t[0] @ c["wu"])
    if kind == "bias_gelu":
        return torch.nn.functional.gelu(t[0] @ c["w"] + c["b"])
    return t[0] @ c["w"] + t[1]


# decode rows (1, 3, 16), prime row counts (13, 17, 11: padded 8-row tiles; 9: 3-row tiles), column tails (N = 100, 40: no 32-column panel divides them), a
# gated width that is a multiple of 16 but not of 32, and the 1376-wide FFN of the h512 block; 8-row tiles
# over a long K: residual K = 2048, the HF Llama MLP's gate/up (hidden 256, intermediate 688)
@pytest.mark.parametrize("kind,m,k,n", [("residual", 1, 64, 100), ("residual", 3, 48, 40), ("gated", 16, 64, 48),
                                        ("bias_gelu", 13, 32, 1376), ("gated", 1, 32, 1376), ("residual", 17, 40, 64),
                                        ("gated", 11, 32, 64), ("residual", 9, 24, 32), ("residual", 40, 2048, 64),
                                        ("gated", 24, 256, 688)])
def test_linear_tails_and_epilogues_match_torch(backend, kind, m, k, n):
    g = _linear(kind, m, k, n)
    xs = rng_arrays(g, 0)
    got = backend.lower(g, {})(xs)[0]
    want = _torch(kind, g, xs).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
