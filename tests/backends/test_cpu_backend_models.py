"""Every model in tests/models compiles for `cpu` through attncc.compile and matches torch eager."""
from __future__ import annotations

import importlib

import pytest
import torch

MODELS = {"llama": "make_llama_block", "gpt2": "make_gpt2_block", "mistral": "make_mistral_block",
          "gemma2": "make_gemma2_block", "bert": "make_bert_layer", "vit": "make_vit_block",
          "encoder_decoder": "make_encoder_decoder"}


# default-suite budget: llama by default (the HF zoo and the variant identities compile the other families
# for cpu too); every model under -m slow
@pytest.mark.parametrize("name", [n if n == "llama" else pytest.param(n, marks=pytest.mark.slow) for n in MODELS])
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
    # the tile pass proposes only tiles the kernels accept, and the kernels run the tiles it recorded
    assert not [n for n in cm.executable.notes if "rejected by the kernel" in n], cm.executable.notes
    rules = cm.executable.artifacts["program"].plugin.capabilities.tiles
    for node in cm.graph.attention_ops():
        assert rules.accepts(node.op.tiling.q_block, node.op.tiling.kv_block), node.op.tiling
    steps = [s for r in cm.executable.artifacts["program"].runners.values() for s in r.plan.steps
             if s["kind"] == "attention"]
    tiles = {(n.op.tiling.q_block, n.op.tiling.kv_block) for n in cm.graph.attention_ops()}
    for step in steps:
        assert (step["config"]["q_block"], step["config"]["kv_block"]) in tiles
