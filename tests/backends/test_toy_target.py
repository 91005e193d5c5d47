"""docs/adding-a-target.md, tested: a toy target of a few dozen lines -- a Target record and a plugin that
overrides only its kernels -- builds a model through the core, runs it here and matches the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

from attncc.backends.core.backend import TvmBackend
from attncc.backends.core.notes import fallbacks
from attncc.backends.core.plugin import TargetPlugin
from attncc.cost_models import target as registry
from attncc.cost_models.capabilities import Capabilities, TileRules
from attncc.cost_models.target import Options, Target
from attncc.ir import Graph, run_graph
from attncc.ir.ops import Attention, AttentionSpec, Linear, MaskSpec, Softmax
from attncc.ir.passes import run_pipeline
from attncc.ir.passes.pipelines import target_pipeline


# ---- the toy target: its record (backends/<target>/record.py) ...
def toy_record(options=None) -> Target:
    return Target(name="toy", description="host LLVM, unscheduled kernels", backend="", options=Options(),
                  tvm_target={"kind": "llvm"}, capabilities=Capabilities(dtypes=("float32",), tiles=TileRules(
                      q_block_multiple=16, kv_block_multiple=32, q_block_max=64, kv_block_max=128)),
                  device="host-cpu", parallel_units=1, pipeline=target_pipeline("toy", 1))


# ... and its plugin (backends/<target>/plugin.py): only the stages that differ from the core's defaults
class ToyPlugin(TargetPlugin):
    name = "toy"
    description = "host LLVM, unscheduled kernels"

    def schedule(self, kind: str):
        return lambda sch, root: None      # TVM's LLVM codegen builds unscheduled loops

    def attention_primfunc(self, cfg, target: dict):
        raise NotImplementedError("the toy target has no attention kernel of its own")


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(registry._FACTORIES, "toy", toy_record)   # backends/__init__.py's TARGETS does this
    return TvmBackend(ToyPlugin())


def _model() -> Graph:
    g = Graph("toy")
    q, k, v = (g.add_input(n, "float32", (1, 2, 40, 16)) for n in ("query", "key", "value"))
    w = g.add_constant(np.random.default_rng(1).standard_normal((16, 8)).astype("float32"), "w_out")
    a = g.add1(Attention(spec=AttentionSpec(2, 2, 16, mask=MaskSpec(causal=True))), [q, k, v], name="attn")
    y = g.add1(Linear(), [a, w], name="proj")     # the core's default matmul strategy: [K, N] weights, fp32 acc
    g.set_outputs([g.add1(Softmax(axis=-1), [y], name="probs")])
    return g


def test_a_toy_target_builds_through_the_core_and_matches_the_interpreter(toy):
    assert (toy.hardware, toy.capabilities.tiles.q_block_multiple) == ("host-cpu", 16)   # read from its record
    graph = run_pipeline(_model(), toy_record().pipeline)        # its pipeline: tile{target=toy}
    tiling = graph.metadata["tiling"]["attn"]
    assert tiling["q_block"] % 16 == 0 and tiling["kv_block"] % 32 == 0 and tiling["kv_block"] <= 128
    exe = toy.lower(graph, {"cache": False})
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 2, 40, 16)).astype("float32") for _ in range(3)]
    got = exe(xs)[0]
    np.testing.assert_allclose(np.asarray(got), run_graph(graph, xs)[0], rtol=1e-4, atol=1e-5)
    (note,) = fallbacks(exe.notes)    # no attention kernel of its own: the core's TE attention, noted as data
    assert (note.node, note.ran_as) == ("attn", "generic TE attention")
