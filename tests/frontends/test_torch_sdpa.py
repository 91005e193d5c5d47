"""scaled_dot_product_attention maps exactly into AttentionSpec: scale, is_causal, enable_gqa, mask kinds,
dropout, the fused overloads, and spelled-out failure modes (mul vs div scale, K that is not transposed,
fp16 casts around softmax)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_helpers import assert_matches_eager, import_torch

from attncc.frontends.torch_converters import TorchImportError


class Sdpa(nn.Module):
    """SDPA on projected inputs; kwargs go to F.scaled_dot_product_attention."""

    def __init__(self, heads=4, kv_heads=4, dim=8, **kwargs):
        super().__init__()
        self.q = nn.Linear(16, heads * dim)
        self.kv = nn.Linear(16, 2 * kv_heads * dim)
        self.heads, self.kv_heads, self.dim, self.kwargs = heads, kv_heads, dim, kwargs

    def forward(self, x, y, mask=None):
        B, S, _ = x.shape
        q = self.q(x).view(B, S, self.heads, self.dim).transpose(1, 2)
        k, v = self.kv(y).view(B, y.shape[1], 2 * self.kv_heads, self.dim).transpose(1, 2).chunk(2, dim=1)
        extra = {"attn_mask": mask} if mask is not None else {}
        return F.scaled_dot_product_attention(q, k, v, **extra, **self.kwargs)


def _inputs(sq=5, skv=7, *mask):
    torch.manual_seed(1)
    return (torch.randn(2, sq, 16), torch.randn(2, skv, 16), *mask)


def _only_attention(graph):
    (node,) = graph.attention_ops()
    return node.spec


def test_non_default_scale_is_kept_exactly():
    model, inputs = Sdpa(scale=0.123).eval(), _inputs()
    graph = import_torch(model, inputs)
    assert _only_attention(graph).scale == 0.123
    assert_matches_eager(graph, model, inputs)


def test_default_scale_is_explicit_inverse_sqrt_head_dim():
    model = Sdpa(dim=16).eval()
    assert _only_attention(import_torch(model, _inputs())).scale == pytest.approx(1 / math.sqrt(16))


def test_enable_gqa_keeps_kv_heads():
    model, inputs = Sdpa(heads=6, kv_heads=2, enable_gqa=True).eval(), _inputs()
    graph = import_torch(model, inputs)
    spec = _only_attention(graph)
    assert (spec.num_heads, spec.num_kv_heads, spec.variant) == (6, 2, "gqa")
    assert_matches_eager(graph, model, inputs)


def test_is_causal_is_top_left_aligned_even_when_lengths_differ():
    model, inputs = Sdpa(is_causal=True).eval(), _inputs(5, 7)
    graph = import_torch(model, inputs)
    mask = _only_attention(graph).mask
    assert mask.causal and mask.alignment == "top_left" and mask.input == "none"
    assert_matches_eager(graph, model, inputs)


def test_bool_mask_is_a_keep_mask():
    keep = torch.rand(2, 1, 5, 7) > 0.4
    keep[..., 0] = True
    model, inputs = Sdpa().eval(), _inputs(5, 7, keep)
    graph = import_torch(model, inputs)
    assert _only_attention(graph).mask.input == "bool"
    assert_matches_eager(graph, model, inputs)


def test_float_mask_is_additive():
    bias = torch.randn(1, 4, 5, 7)
    model, inputs = Sdpa().eval(), _inputs(5, 7, bias)
    graph = import_torch(model, inputs)
    assert _only_attention(graph).mask.input == "additive"
    assert_matches_eager(graph, model, inputs)


class ConstMask(nn.Module):
    def __init__(self, keep):
        super().__init__()
        self.register_buffer("keep", keep)

    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.keep)


def test_constant_bool_mask_becomes_structured_only_when_it_is_a_position_pattern():
    q, k, v = torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    graph = import_torch(ConstMask(causal), (q, k, v))
    assert _only_attention(graph).mask.causal
    odd = causal.clone()
    odd[4, 1] = False  # not a window pattern: must stay an explicit keep-mask
    model = ConstMask(odd)
    graph = import_torch(model, (q, k, v))
    mask = _only_attention(graph).mask
    assert mask.input == "bool" and not mask.causal
    assert_matches_eager(graph, model, (q, k, v))


def test_dropout_in_training_is_rejected():
    model = Sdpa(dropout_p=0.2).train()
    with pytest.raises(TorchImportError, match="dropout_p=0.2"):
        import_torch(model, _inputs())
    drop = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.1)).train()
    with pytest.raises(TorchImportError, match=r"model\.eval\(\)"):
        import_torch(drop, (torch.randn(2, 16),))
    graph = import_torch(drop.eval(), (torch.randn(2, 16),))  # eval: dropout is the identity
    assert not graph.find("Dropout")


class CpuFlash(nn.Module):
    def forward(self, q, k, v):
        out, _ = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True, scale=0.2)
        return out


def test_cpu_flash_overload_arrives_whole():
    inputs = tuple(torch.randn(1, 2, 4, 8) for _ in range(3))
    graph = import_torch(CpuFlash(), inputs)
    spec = _only_attention(graph)
    assert spec.scale == 0.2 and spec.mask.causal
    assert_matches_eager(graph, CpuFlash(), inputs)


class Eager(nn.Module):
    """Spelled-out attention with a pluggable scaling and key operand."""

    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, q, k, v):
        if self.how == "mul":
            s = q @ k.transpose(-2, -1) * 0.3
        elif self.how == "div":
            s = torch.matmul(q, k.transpose(-1, -2)) / 5.0
        elif self.how == "reshape_k":  # same shape as kᵀ but not a transpose: not attention
            s = q @ k.reshape(k.shape[0], k.shape[1], k.shape[3], k.shape[2]) * 0.3
        return F.softmax(s, dim=-1) @ v


def _qkv(s=8, d=8):
    torch.manual_seed(2)
    return tuple(torch.randn(2, 4, s, d) for _ in range(3))


@pytest.mark.parametrize("how,scale", [("mul", 0.3), ("div", 0.2)])
def test_spelled_out_scale_by_mul_or_div(how, scale):
    graph = import_torch(Eager(how), _qkv())
    assert_matches_eager(graph, Eager(how), _qkv())
    assert _only_attention(graph).scale == pytest.approx(scale)


def test_key_that_is_not_transposed_is_not_lifted():
    graph = import_torch(Eager("reshape_k"), _qkv())
    assert not graph.attention_ops()
    assert_matches_eager(graph, Eager("reshape_k"), _qkv())
    assert any(d.get("kind") == "attention-not-lifted" for d in graph.diagnostics)


class HalfSoftmax(nn.Module):
    def forward(self, q, k, v):
        s = torch.matmul(q, k.transpose(2, 3)) * 0.25
        p = F.softmax(s, dim=-1, dtype=torch.float32).to(q.dtype)
        return torch.matmul(p, v)


def test_fp16_casts_around_softmax():
    inputs = tuple(t.half() for t in _qkv())
    graph = import_torch(HalfSoftmax(), inputs)
    assert graph.inputs[0].dtype == "float16"
    assert_matches_eager(graph, HalfSoftmax(), inputs, rtol=2e-2, atol=2e-3)
    assert _only_attention(graph).scale == 0.25
