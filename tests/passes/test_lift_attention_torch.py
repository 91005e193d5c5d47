"""lift-attention on the forms torch.export writes: batched matmuls as expand/view(B*H)/bmm/view, and an
eager GPT-2 attention imported through the torch frontend, numerics against eager PyTorch."""
import math

import numpy as np
import pytest

from attncc.ir.ops import Slice, Softmax, Where

from .lift_attention_graphs import Expand, Graph, Reshape, Transpose, bin_, lift, mm, only_spec, scalar


def test_bmm_view_form_with_causal_buffer():
    B, H, S, D = 2, 3, 4, 8
    g = Graph("bmm")
    q, k, v = (g.add_input(n, "float32", (B, H, S, D)) for n in "qkv")
    kt = g.add1(Transpose((0, 1, 3, 2)), [k])
    q3 = g.add1(Reshape((B * H, S, D)), [g.add1(Expand((B, H, S, D)), [q])])
    k3 = g.add1(Reshape((B * H, D, S)), [g.add1(Expand((B, H, D, S)), [kt])])
    s = g.add1(Reshape((B, H, S, S)), [mm(g, q3, k3, "bmm_qk")])
    s = bin_(g, "div", s, scalar(g, math.sqrt(D)))
    buf = g.add_constant(np.tril(np.ones((1, 1, 8, 8), bool)), "bias")
    m = g.add1(Slice(3, 0, S), [g.add1(Slice(2, 0, S), [buf])])
    p = g.add1(Softmax(-1), [g.add1(Where(), [m, s, scalar(g, -3.4e38)])], name="softmax")
    p3 = g.add1(Reshape((B * H, S, S)), [g.add1(Expand((B, H, S, S)), [p])])
    v3 = g.add1(Reshape((B * H, S, D)), [g.add1(Expand((B, H, S, D)), [v])])
    g.set_outputs([g.add1(Reshape((B, H, S, D)), [mm(g, p3, v3, "bmm_pv")])])
    after = lift(g, "lift-attention,canonicalize")
    spec = only_spec(after)
    assert spec.mask.causal and spec.num_heads == H and spec.scale == pytest.approx(1 / math.sqrt(D))
    assert [n.op.op_name for n in after.topological() if n.op.op_name != "Constant"] == ["Attention"]


def test_eager_gpt2_attention_through_torch_frontend():
    torch = pytest.importorskip("torch")
    frontend = pytest.importorskip("attncc.frontends.torch_import")
    from attncc.ir.interpreter import run_graph
    from attncc.ir.passes import run_pipeline

    class Attn(torch.nn.Module):
        def __init__(self, E=32, H=4, T=16):
            super().__init__()
            self.H, self.c_attn, self.c_proj = H, torch.nn.Linear(E, 3 * E), torch.nn.Linear(E, E)
            self.register_buffer("bias", torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T))

        def forward(self, x):
            B, T, E = x.shape
            q, k, v = (t.view(B, T, self.H, E // self.H).transpose(1, 2) for t in self.c_attn(x).split(E, dim=2))
            w = q @ k.transpose(-1, -2) / math.sqrt(E // self.H)
            w = torch.where(self.bias[:, :, :T, :T], w, torch.finfo(w.dtype).min)
            return self.c_proj((torch.softmax(w, -1) @ v).transpose(1, 2).reshape(B, T, E))

    torch.manual_seed(0)
    m, x = Attn().eval(), torch.randn(2, 8, 32)
    g = frontend.import_torch(m, (x,))
    after = run_pipeline(g, "canonicalize,constant-fold,lift-attention,canonicalize")
    spec = only_spec(after)
    assert spec.mask.causal and spec.scale == pytest.approx(1 / math.sqrt(8))
    np.testing.assert_allclose(run_graph(after, [x.numpy()])[0], m(x).detach().numpy(), rtol=1e-5, atol=1e-5)
