"""torch frontend mechanics: dynamic dims, unsupported ops, parameters as constants, op coverage numerics."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim

from torch_helpers import assert_matches_eager, import_torch
from tests.models import make_gpt2_block, make_llama_block

import attncc
from attncc.frontends.torch_converters import TORCH_CONVERTERS, TorchImportError, register_torch_converter


def test_dynamic_batch_and_seq_survive_import():
    model, (x,) = make_gpt2_block("sdpa")
    graph = import_torch(model, (x,), dynamic_shapes={"x": {0: Dim("batch"), 1: Dim("seq", max=16)}})
    assert graph.inputs[0].shape == ("batch", "seq", 32)
    assert graph.outputs[0].shape == ("batch", "seq", 32)
    for b, s in ((1, 3), (3, 11)):
        assert_matches_eager(graph, model, (torch.randn(b, s, 32),))


def test_dynamic_kv_cache_dims_in_llama_block():
    model, inputs = make_llama_block("eager")
    seq, past = Dim("seq", max=16), Dim("past", max=16)
    graph = import_torch(model, inputs, dynamic_shapes=(
        {0: Dim("batch"), 1: seq}, {0: Dim("batch"), 2: past}, {0: Dim("batch"), 2: past}))
    assert graph.inputs[0].shape == ("batch", "seq", 32)
    assert graph.inputs[1].shape == ("batch", 2, "past", 8)
    assert graph.outputs[1].shape == ("batch", 2, "past+seq", 8)
    for b, s, p in ((1, 2, 5), (3, 7, 9)):
        ins = (torch.randn(b, s, 32), torch.randn(b, 2, p, 8), torch.randn(b, 2, p, 8))
        assert_matches_eager(graph, model, ins)


def test_unsupported_op_names_node_op_and_supported_list():
    class Cumprod(nn.Module):
        def forward(self, x):
            return torch.cumprod(x, dim=-1) * 2

    with pytest.raises(TorchImportError) as err:
        import_torch(Cumprod(), (torch.randn(2, 3),))
    msg = str(err.value)
    assert "FX node 'cumprod'" in msg and "aten.cumprod.default" in msg
    assert "aten.scaled_dot_product_attention.default" in msg  # lists what is supported


def test_linear_weights_become_in_out_constants():
    model = nn.Linear(5, 3).eval()
    graph = import_torch(model, (torch.randn(2, 5),))
    (lin,) = graph.find("Linear")
    w = graph.constants[lin.inputs[1].producer.op.key]
    np.testing.assert_array_equal(w, model.weight.detach().numpy().T)


def test_exported_program_and_import_model_dispatch():
    model, inputs = make_gpt2_block("sdpa")
    ep = torch.export.export(model, inputs)
    graph = attncc.import_model(ep)
    assert len(graph.attention_ops()) == 1
    assert_matches_eager(graph, model, inputs)


def test_registered_converter_is_used():
    name = "aten.cumprod.default"
    assert name not in TORCH_CONVERTERS
    try:
        @register_torch_converter(name)
        def _neg(ctx, args):  # a deliberately wrong meaning, to prove this converter ran
            from attncc.ir.ops import Unary
            return ctx.emit(Unary("neg"), [args["self"]])

        class Cumprod(nn.Module):
            def forward(self, x):
                return torch.cumprod(x, dim=0)

        graph = import_torch(Cumprod(), (torch.ones(3),))
        assert graph.find("Unary")[0].op.fn == "neg"
    finally:
        TORCH_CONVERTERS.pop(name, None)


class ManyOps(nn.Module):
    """One forward touching most converters; numerics checked against eager."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)
        self.ln = nn.LayerNorm(8)
        self.rms = nn.RMSNorm(8, eps=1e-5)
        self.register_buffer("tri", torch.tril(torch.ones(4, 4)))

    def forward(self, ids, x):
        e = self.emb(ids)                                   # (2, 4, 8)
        h = self.rms(self.ln(e + x))
        a, b = h.chunk(2, dim=-1)                           # (2, 4, 4)
        g = F.gelu(a) + F.gelu(b, approximate="tanh") - F.silu(a) * torch.sigmoid(b)
        g = g + torch.relu(a).pow(2) + torch.tanh(b) * torch.exp(-a.abs()) + torch.rsqrt(1 + b * b)
        g = g + torch.sqrt(a * a + 1) + torch.cos(a) - torch.sin(b) + (-a).clamp(min=-0.5, max=0.5)
        g = g @ self.tri.T + g.mean(-1, keepdim=True) - g.sum(1, keepdim=True) / 4 + g.amax(-1, keepdim=True)
        keep = (a > 0) & ~(b < 0.1) | torch.logical_not(a >= b)
        g = torch.where(keep, g, 0.0).masked_fill(a == b, 1.0)
        r = torch.repeat_interleave(g.unsqueeze(1), 2, dim=1).reshape(2, 8, 4)   # (2, 8, 4)
        t = g.repeat(1, 2, 1)                                                   # (2, 8, 4)
        idx = torch.arange(4) % 3
        s = torch.index_select(r, 1, idx) + t[:, :4] + r.select(1, 0).unsqueeze(1)
        c = torch.cat([s, s.transpose(1, 2).permute(0, 2, 1)], dim=-1)
        return c.squeeze(0).to(torch.float64), (ids * 2 + 1).float(), torch.full((2, 3), 7.0) + x[:, :3, 0]


def test_many_converters_match_eager():
    torch.manual_seed(3)
    model = ManyOps().eval()
    inputs = (torch.randint(0, 10, (2, 4)), torch.randn(2, 4, 8))
    assert_matches_eager(import_torch(model, inputs), model, inputs)
