"""Weight-free import: meta-device models, Hugging Face use_cache=True outputs, repeated layers priced once."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import attncc
from attncc.frontends.repeated_layers import group_layers, parameter_bytes
from attncc.frontends.torch_import import import_torch
from attncc.ir import run_graph

transformers = pytest.importorskip("transformers")

LLAMA = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=64)
DEEPSEEK = dict(vocab_size=64, hidden_size=32, intermediate_size=64, moe_intermediate_size=16, num_attention_heads=4,
                num_key_value_heads=4, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
                topk_group=1, first_k_dense_replace=1, q_lora_rank=24, kv_lora_rank=16, qk_rope_head_dim=4,
                qk_nope_head_dim=8, v_head_dim=8, max_position_embeddings=64)
DECODE = dict(hardware="h100", phase="decode", batch=4, seq=128)


def _llama(layers: int, device: str = "cpu"):
    config = transformers.LlamaConfig(num_hidden_layers=layers, **LLAMA)   # use_cache defaults to True
    assert config.use_cache
    torch.manual_seed(0)
    with torch.device(device):
        return transformers.LlamaForCausalLM(config).eval()


def _ids():
    return torch.randint(3, 64, (2, 8), generator=torch.Generator().manual_seed(0))


def test_use_cache_default_imports_and_matches_torch_logits():
    model = _llama(2)
    graph = import_torch(model, (_ids(),))
    with torch.no_grad():
        want = model(_ids()).logits.numpy()
    got = run_graph(graph, [_ids().numpy()])
    assert len(got) == 1, "only the logits are graph outputs (the DynamicCache is dropped)"
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_meta_model_prices_like_the_same_model_with_weights():
    real, meta = _llama(2), _llama(2, "meta")
    assert meta.lm_head.weight.device.type == "meta"
    got, want = attncc.analyze(meta, (_ids(),), **DECODE), attncc.analyze(real, (_ids(),), **DECODE)
    assert got.weights_bytes == want.weights_bytes == parameter_bytes(real)
    assert got.total_flops == want.total_flops
    assert got.total_time_s == pytest.approx(want.total_time_s, rel=1e-12)
    assert got.kv_bytes_per_token == want.kv_bytes_per_token > 0


def test_meta_constants_are_zero_stride_views():
    graph = import_torch(_llama(2, "meta"), (_ids(),))
    weights = [a for a in graph.constants.values() if a.ndim == 2 and a.size >= 32 * 32]
    assert weights and all(a.strides == (0, 0) for a in weights), "meta weights must not be materialized"


def test_layer_groups_by_structure():
    groups = group_layers(_llama(4, "meta"))
    assert groups.container == "model.layers" and groups.members == {0: [0, 1, 2, 3]}
    assert groups.counts_by_path() == {"model.layers.0": 4}
    config = transformers.DeepseekV3Config(num_hidden_layers=3, **DEEPSEEK)
    with torch.device("meta"):
        model = transformers.DeepseekV3ForCausalLM(config)
    assert group_layers(model).members == {0: [0], 1: [1, 2]}   # first_k_dense_replace=1: one dense, two MoE
    model.model.layers[2].mlp.experts.gate_up_proj = torch.nn.Parameter(torch.empty(1, 1, device="meta"))
    assert group_layers(model) is None   # a changed shape is a structure of its own: nothing repeats


@pytest.mark.slow
def test_repeated_layers_priced_once_equal_pricing_every_layer(monkeypatch):
    model = _llama(4)
    groups = group_layers(model)
    assert groups.container == "model.layers" and groups.members == {0: [0, 1, 2, 3]}
    once = attncc.analyze(model, (_ids(),), **DECODE)
    assert any(r.name.endswith(" x4") for r in once.rows)
    import attncc.frontends.repeated_layers as rl
    monkeypatch.setattr(rl, "group_layers", lambda m: None)   # export and price all 4 layers
    every = attncc.analyze(model, (_ids(),), **DECODE)
    assert once.total_flops == every.total_flops
    assert once.total_time_s == pytest.approx(every.total_time_s, rel=1e-9)
    assert once.kv_bytes_per_token == every.kv_bytes_per_token
    assert once.weights_bytes == every.weights_bytes
    assert len(once.rows) < len(every.rows)


@pytest.mark.slow
def test_deepseek_dense_and_moe_layers_priced_once_equal_every_layer(monkeypatch):
    config = transformers.DeepseekV3Config(num_hidden_layers=3, **DEEPSEEK)
    with torch.device("meta"):
        model = transformers.DeepseekV3ForCausalLM(config).eval()
    groups = group_layers(model)
    assert groups.members == {0: [0], 1: [1, 2]}   # first_k_dense_replace=1: one dense, two MoE layers
    once = attncc.analyze(model, (_ids(),), **DECODE)
    import attncc.frontends.repeated_layers as rl
    monkeypatch.setattr(rl, "group_layers", lambda m: None)
    every = attncc.analyze(model, (_ids(),), **DECODE)
    assert once.total_flops == every.total_flops
    assert once.total_time_s == pytest.approx(every.total_time_s, rel=1e-9)
    assert once.kv_bytes_per_token == every.kv_bytes_per_token > 0
