"""Hugging Face Llama (real model code, random weights) through the torch frontend, both attention
implementations: every layer's attention becomes one Attention op and logits match eager."""
from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from torch_helpers import assert_matches_eager, import_torch  # noqa: E402
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
