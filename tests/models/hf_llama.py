"""Real third-party model code: Hugging Face `transformers` LlamaForCausalLM with a tiny random config
(no download). Needs the optional `transformers` package."""
from __future__ import annotations

import torch
import torch.nn as nn


class LogitsOnly(nn.Module):
    """Wraps a causal LM so forward(input_ids) returns only the logits tensor (no cache objects)."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids):
        return self.lm(input_ids=input_ids, use_cache=False).logits


def make_hf_llama(variant: str = "sdpa", batch: int = 2, seq: int = 8, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    config._attn_implementation = variant
    torch.manual_seed(0)
    model = LogitsOnly(LlamaForCausalLM(config).eval()).eval()
    return model, (torch.randint(0, 64, (batch, seq)),)
