"""Every model in tests/models compiles for `cpu` through attncc.compile and matches torch eager."""
from __future__ import annotations

import importlib

import pytest
import torch

MODELS = {"llama": "make_llama_block", "gpt2": "make_gpt2_block", "mistral": "make_mistral_block",
          "gemma2": "make_gemma2_block", "bert": "make_bert_layer", "vit": "make_vit_block",
          "encoder_decoder": "make_encoder_decoder"}


@pytest.mark.parametrize("name", list(MODELS))
def test_model_compiles_for_cpu_and_matches_torch(name):
    import attncc

    mod = importlib.import_module(f"tests.models.{name}")
    model, inputs = getattr(mod, MODELS[name])()
    cm = attncc.compile(model, inputs, target="cpu")
    with torch.no_grad():
        want = model(*inputs)
    want = want[0] if isinstance(want, (tuple, list)) else want
    got = cm(*inputs)
    got = got[0] if isinstance(got, tuple) else got
    torch.testing.assert_close(got, want.detach(), rtol=1e-4, atol=1e-5)
    assert cm.graph.attention_ops(), "the model's attention was not lifted, so the kernel path went untested"
