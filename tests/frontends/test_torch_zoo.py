"""The model zoo through the torch frontend: every attention site becomes one Attention op with the
right spec, in SDPA form and in eager spelled-out form, and the IR computes what eager torch does."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torch_helpers import assert_matches_eager, import_torch, run_graph
from tests.models import ZOO

from attncc.compiled import to_numpy

S8 = 1 / math.sqrt(8)
# per model: one dict per attention site, in topological order
EXPECTED = {
    "gpt2_block": [dict(num_heads=4, num_kv_heads=4, scale=S8, causal=True, alignment="top_left")],
    "llama_block": [dict(num_heads=4, num_kv_heads=2, scale=S8, causal=True, alignment="bottom_right")],
    "bert_layer": [dict(num_heads=4, scale=S8, causal=False, mask_input="additive")],
    "vit_block": [dict(num_heads=4, num_kv_heads=4, scale=S8, causal=False, mask_input="none")],
    "encoder_decoder": [dict(num_heads=4, scale=S8, causal=False), dict(num_heads=4, scale=S8, causal=True),
                        dict(num_heads=4, scale=S8, causal=False)],
    "mistral_block": [dict(num_heads=4, num_kv_heads=1, scale=S8, causal=True, window_left=3)],
    "gemma2_block": [dict(num_heads=4, scale=0.25, causal=True)],
}
# what only the spelled-out form carries (SDPA has no softcap; RoPE and the cache stay outside SDPA)
EAGER_ONLY = {"gemma2_block": [dict(softcap=50.0)], "llama_block": [dict(kv_cache=True, rope=True)],
              "mistral_block": [dict(rope=True)]}


def check_spec(spec, want: dict) -> None:
    for key, value in want.items():
        if key == "scale":
            assert spec.scale == pytest.approx(value, rel=1e-6), spec.summary()
        elif key in ("causal", "alignment", "window_left"):
            assert getattr(spec.mask, key) == value, spec.summary()
        elif key == "mask_input":
            assert spec.mask.input == value, spec.summary()
        elif key == "rope":
            assert (spec.rope is not None) == value, spec.summary()
        else:
            assert getattr(spec, key) == value, spec.summary()


@pytest.mark.parametrize("name", sorted(ZOO))
def test_sdpa_form_imports_with_expected_attention(name):
    model, inputs = ZOO[name]("sdpa")
    graph = import_torch(model, inputs)
    sites = graph.attention_ops()
    assert len(sites) == len(EXPECTED[name])
    for node, want in zip(sites, EXPECTED[name]):
        check_spec(node.spec, want)
    assert_matches_eager(graph, model, inputs)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_eager_form_is_lifted_with_expected_attention(name):
    model, inputs = ZOO[name]("eager")
    graph = import_torch(model, inputs)
    assert_matches_eager(graph, model, inputs)
    sites = graph.attention_ops()
    assert len(sites) == len(EXPECTED[name]), graph.diagnostics
    extra = EAGER_ONLY.get(name, [{}] * len(sites))
    for node, want, more in zip(sites, EXPECTED[name], extra):
        check_spec(node.spec, {**want, **more})
    assert not graph.find("Softmax"), "a softmax was left outside Attention"


@pytest.mark.parametrize("name,dtype", [("llama_block", torch.float16), ("gemma2_block", torch.bfloat16)])
def test_half_precision_eager_forms_lift(name, dtype):
    model, inputs = ZOO[name]("eager")
    model = model.to(dtype)
    inputs = tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
    graph = import_torch(model, inputs)
    assert graph.inputs[0].dtype == str(dtype).removeprefix("torch.")
    assert len(graph.attention_ops()) == len(EXPECTED[name]), graph.diagnostics
    got = run_graph(graph, [to_numpy(t) for t in inputs])
    with torch.no_grad():
        want = model(*inputs)
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.astype(np.float32), w.float().numpy(), rtol=5e-2, atol=2e-2)
