"""BERT encoder layer in HF style: padding mask (B, S) of 1/0 turned into an additive extended mask,
scores divided by sqrt(head_dim), post-LayerNorm, erf GELU."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class BertSelfAttention(nn.Module):
    def __init__(self, hidden, heads, variant):
        super().__init__()
        self.num_attention_heads, self.attention_head_size = heads, hidden // heads
        self.all_head_size = hidden
        self.query, self.key, self.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(0.1)
        self.variant = variant

    def transpose_for_scores(self, x):
        new_x_shape = x.size()[:-1] + (self.num_attention_heads, self.attention_head_size)
        return x.view(new_x_shape).permute(0, 2, 1, 3)

    def forward(self, hidden_states, extended_attention_mask):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        if self.variant == "sdpa":
            context_layer = F.scaled_dot_product_attention(query_layer, key_layer, value_layer,
                                                           attn_mask=extended_attention_mask)
        else:
            attention_scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
            attention_scores = attention_scores / math.sqrt(self.attention_head_size)
            attention_scores = attention_scores + extended_attention_mask
            attention_probs = self.dropout(nn.functional.softmax(attention_scores, dim=-1))
            context_layer = torch.matmul(attention_probs, value_layer)
        context_layer = context_layer.permute(0, 2, 1, 3).contiguous()
        return context_layer.view(context_layer.size()[:-2] + (self.all_head_size,))


class BertLayer(nn.Module):
    def __init__(self, hidden=32, heads=4, intermediate=64, variant="sdpa"):
        super().__init__()
        self.attention = BertSelfAttention(hidden, heads, variant)
        self.attn_out = nn.Linear(hidden, hidden)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, hidden_states, attention_mask):
        # (B, S) 1 = token, 0 = padding -> (B, 1, 1, S) additive bias
        extended = (1.0 - attention_mask[:, None, None, :].to(hidden_states.dtype)) * torch.finfo(hidden_states.dtype).min
        a = self.ln1(self.attn_out(self.attention(hidden_states, extended)) + hidden_states)
        return self.ln2(self.output(F.gelu(self.intermediate(a))) + a)


def make_bert_layer(variant: str = "sdpa", batch: int = 2, seq: int = 8):
    torch.manual_seed(0)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[0, seq - 3:] = 0  # the first sequence is padded
    return BertLayer(variant=variant).eval(), (torch.randn(batch, seq, 32), mask)
