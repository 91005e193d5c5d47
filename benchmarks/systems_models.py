"""Full-size models on the meta device (no weights) for `attncc report/plan` and benchmarks/systems_pricing.py.

    attncc plan benchmarks/systems_models.py:deepseek_v3 --system hgx-h800 --nodes 1..18 --phase decode --tpot-slo 50ms

Each function returns (model, example_inputs): the model built from transformers' own config class with the
published dimensions (default config of DeepseekV3Config is DeepSeek-V3), parameters on `meta`, BF16.
"""
from __future__ import annotations

import torch


def _meta(cls_name: str, config) -> tuple:
    import transformers

    with torch.device("meta"):
        model = getattr(transformers, cls_name)(config).to(torch.bfloat16).eval()
    return model, (torch.zeros(2, 8, dtype=torch.long),)


def deepseek_v3():
    """DeepSeek-V3 (671B): 61 layers (3 dense), MLA, 256 routed experts + 1 shared, top-8."""
    import transformers

    return _meta("DeepseekV3ForCausalLM", transformers.DeepseekV3Config())


def llama2_70b():
    """Llama-2-70B: 80 layers, hidden 8192, 64 heads, 8 KV heads, FFN 28672, vocab 32000."""
    import transformers

    return _meta("LlamaForCausalLM", transformers.LlamaConfig(
        hidden_size=8192, intermediate_size=28672, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
        vocab_size=32000, max_position_embeddings=4096))


def qwen25_72b():
    """Qwen-2.5-72B: 80 layers, hidden 8192, 64 heads, 8 KV heads, FFN 29568, vocab 152064."""
    import transformers

    return _meta("Qwen2ForCausalLM", transformers.Qwen2Config(
        hidden_size=8192, intermediate_size=29568, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
        vocab_size=152064, max_position_embeddings=32768))


def llama31_405b():
    """LLaMA-3.1-405B: 126 layers, hidden 16384, 128 heads, 8 KV heads, FFN 53248, vocab 128256."""
    import transformers

    return _meta("LlamaForCausalLM", transformers.LlamaConfig(
        hidden_size=16384, intermediate_size=53248, num_hidden_layers=126, num_attention_heads=128,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072))
