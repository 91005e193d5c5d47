"""Hugging Face Llama (real model code, random weights) through the torch frontend, both attention
implementations: every layer's attention becomes one Attention op and logits match eager, with static
shapes and with dynamic batch and sequence dims (also compiled for cpu)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.export import Dim

import attncc

pytest.importorskip("transformers")

from torch_helpers import assert_matches_eager, eager_outputs, import_torch  # noqa: E402
from tests.models.hf_llama import make_hf_llama  # noqa: E402


@pytest.mark.parametrize("variant", ["sdpa", "eager"])
def test_hf_llama_attention_sites_are_lifted(variant):
    model, inputs = make_hf_llama(variant)
    graph = import_torch(model, inputs)
    sites = graph.attention_ops()
    assert len(sites) == 2  # one per decoder layer
    for node in sites:
        spec = node.spec
        assert spec.num_heads == 4 and spec.head_dim == 8 and spec.scale == pytest.approx(8 ** -0.5)
        assert spec.mask.causal and spec.mask.input == "none"
        if variant == "eager":  # RoPE and repeat_kv are visible around the spelled-out attention
            assert spec.num_kv_heads == 2 and spec.rope is not None
    assert not graph.find("Softmax")
    assert_matches_eager(graph, model, inputs)


DYNAMIC = {"input_ids": {0: Dim("batch"), 1: Dim("seq")}}  # no maximum: HF's aranges/cumsums stay symbolic


def _dynamic_hf_llama(variant: str):
    model, inputs = make_hf_llama(variant)
    graph = import_torch(model, inputs, dynamic_shapes=DYNAMIC)
    assert graph.inputs[0].shape == ("batch", "seq") and graph.outputs[0].shape == ("batch", "seq", 64)
    assert graph.find("CumSum")  # HF's position/packed-sequence mask construction survives as a running sum
    assert len(graph.attention_ops()) == 2 and not graph.find("Softmax")  # every layer's attention lifted
    return model, graph


# default-suite budget: test_zoo_fusion compiles the HF llama with dynamic dims by default
@pytest.mark.parametrize("variant", [pytest.param("sdpa", marks=pytest.mark.slow), pytest.param("eager", marks=pytest.mark.slow)])
def test_hf_llama_dynamic_batch_and_seq_imports_and_matches_eager(variant):
    model, graph = _dynamic_hf_llama(variant)
    # the cpu pipeline turns HF's computed causal mask (aranges from ones under symbolic seq) into
    # MaskSpec fields and folds repeat_kv into the op's 2 kv heads, in both attention implementations
    optimized = attncc.optimize(graph, "cpu")
    for node in optimized.attention_ops():
        spec = node.spec
        assert spec.mask.causal and spec.mask.input == "none" and spec.mask.window_left is None, spec.summary()
        assert spec.num_heads == 4 and spec.num_kv_heads == 2, spec.summary()
    assert len(optimized.attention_ops()) == 2
    assert not [o for n in optimized.nodes for o in n.outputs if tuple(o.shape[-2:]) == ("seq", "seq")]  # no S x S mask
    for batch, seq in ((1, 3), (3, 11)):  # neither is the (2, 8) example the export traced
        ids = torch.randint(0, 64, (batch, seq), generator=torch.Generator().manual_seed(seq))
        assert_matches_eager(graph, model, (ids,), rtol=1e-4)
        assert_matches_eager(optimized, model, (ids,), rtol=1e-4)


@pytest.mark.slow  # ~11 s; shape-generic cpu builds of dynamic models are covered in tests/backends/test_shape_generic.py
def test_hf_llama_dynamic_compiles_for_cpu_and_matches_eager(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))  # really compile, never reuse a plan
    model, graph = _dynamic_hf_llama("sdpa")
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(0))
    compiled = attncc.compile(graph, (ids,), target="cpu")
    assert not [d for d in compiled.diagnostics if d["kind"] == "lowering"]  # no op fell back to the host
    assert len(compiled.graph.attention_ops()) == 2
    other = torch.randint(0, 64, (3, 5), generator=torch.Generator().manual_seed(1))
    got = compiled(other)
    np.testing.assert_allclose(got.numpy(), eager_outputs(model, (other,))[0], rtol=1e-4, atol=1e-5)
