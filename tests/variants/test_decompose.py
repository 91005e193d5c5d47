"""decompose-variants: every decomposable variant feature becomes plain Attention + IR ops with the reference's
semantics, and compiles for cpu onto the TVM kernels without the host-reference fallback."""
import numpy as np
import pytest

import attncc
from attncc.ir import Graph
from attncc.ir.interpreter import run_graph
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import MTLA
from attncc.ir.passes import run_pipeline
from attncc.ir.passes.decompose import DECOMPOSITIONS
from attncc.ir.ops.attention_spec import FEATURE_REGISTRY

from .decompose_cases import CASES, UNDECOMPOSABLE, graph_of

PIPELINE = "decompose-variants,canonicalize,dce"
FALLBACK_WORDS = ("numpy reference", "generic TE attention", "generic schedule")


def _close(got, want, rtol):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, float(np.abs(want).max())))


def test_every_feature_kind_has_a_decomposition():
    assert set(DECOMPOSITIONS) == set(FEATURE_REGISTRY)


@pytest.mark.parametrize("shape", [0, 1])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decomposed_graph_equals_reference(case, shape):
    spec, inputs = case.build(shape)
    before = graph_of(spec, inputs)
    after = run_pipeline(before, PIPELINE)
    assert not after.diagnostics, after.diagnostics
    assert all(not n.op.spec.features_list() for n in after.attention_ops()), "a featured Attention op is left"
    assert after.outputs[0].name == before.outputs[0].name
    _close(run_graph(after, inputs)[0], run_graph(before, inputs)[0], rtol=1e-5)


# default-suite budget: a few decompositions compile for cpu by default (tests/variants/test_identities.py compiles
# every feature kind for cpu with strict=True by default); every case under -m slow
DEFAULT_CPU = {"mla-absorbed", "hilo", "moh-authors-routers", "head_blocks", "grouped", "mtla"}


@pytest.mark.parametrize("case", [c if c.name in DEFAULT_CPU else pytest.param(c, marks=pytest.mark.slow)
                                  for c in CASES], ids=lambda c: c.name)
def test_cpu_compiles_decomposed_variant_onto_tvm_kernels(case):
    spec, inputs = case.build(0)
    graph = graph_of(spec, inputs)
    cm = attncc.compile(graph, target="cpu", options={"cache": False})
    arrays = [inputs[v.name] for v in graph.inputs]
    _close(cm(*arrays), run_graph(graph, inputs)[0], rtol=1e-4)
    fallbacks = [n for n in cm.executable.notes if any(w in n for w in FALLBACK_WORDS)]
    assert not fallbacks, fallbacks
    lowered = cm.executable.artifacts["program"].graph
    assert all(not n.op.spec.features_list() for n in lowered.attention_ops())
    assert len(cm.graph.attention_ops()) == 1 and cm.graph.attention_ops()[0].op.spec.features_list(), \
        "the compiled model's graph (cost report) keeps the variant feature"


@pytest.mark.parametrize("case", UNDECOMPOSABLE, ids=lambda c: c.name)
def test_recurrent_linear_rules_keep_the_reference_with_the_reason(case):
    spec, inputs = case.build(0)
    graph = graph_of(spec, inputs)
    after = run_pipeline(graph, PIPELINE)
    (diag,) = after.diagnostics
    assert diag["pass"] == "decompose-variants" and "recurrence" in diag["reason"]
    assert len(after.nodes) == len(graph.nodes), "a failed rewrite must leave no partial ops behind"
    cm = attncc.compile(graph, target="cpu", options={"cache": False})
    (note,) = cm.executable.notes
    assert "numpy reference" in note and "recurrence" in note
    _close(cm(*[inputs[v.name] for v in graph.inputs]), run_graph(graph, inputs)[0], rtol=1e-5)


def test_symbolic_length_keeps_mtla_with_a_reason():
    spec = AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True), kv_source=MTLA(2))
    g = Graph("symbolic")
    vals = [g.add_input(n, "float32", shape) for n, shape in
            (("query", (1, 2, "S", 8)), ("key", (1, 2, "S", 8)), ("value", (1, 2, "S", 8)), ("merge_weights", (1, "S")))]
    g.set_outputs([g.add1(Attention(spec=spec), vals, name="attention")])
    after = run_pipeline(g, PIPELINE)
    assert after.attention_ops()[0].op.spec.kv_source == MTLA(2)
    assert "symbolic" in after.diagnostics[0]["reason"]
