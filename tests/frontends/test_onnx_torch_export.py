"""A small attention block exported by torch.onnx.export(dynamo=True) imports into one Attention op
with the right spec, a symbolic batch dim, and outputs equal to eager PyTorch."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxscript")
import torch.nn.functional as F  # noqa: E402

try:
    from .onnx_helpers import run_ir
except ImportError:  # tests/frontends is not a package
    from onnx_helpers import run_ir

E, H = 32, 4


class Block(torch.nn.Module):
    """Pre-LN causal self-attention with a fused qkv projection; SDPA or spelled out (GPT-2 style)."""

    def __init__(self, spelled: bool, scale: float | None = None):
        super().__init__()
        self.qkv, self.proj, self.ln = torch.nn.Linear(E, 3 * E), torch.nn.Linear(E, E), torch.nn.LayerNorm(E)
        self.spelled, self.scale = spelled, scale

    def forward(self, x):
        B, S, _ = x.shape
        q, k, v = self.qkv(self.ln(x)).split(E, dim=-1)
        q, k, v = (t.view(B, S, H, E // H).transpose(1, 2) for t in (q, k, v))
        if self.spelled:
            att = (q @ k.transpose(-2, -1)) / (E // H) ** 0.5
            keep = torch.tril(torch.ones(S, S, dtype=torch.bool))
            y = att.masked_fill(~keep, float("-inf")).softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        return x + self.proj(y.transpose(1, 2).reshape(B, S, E))


def _export_and_check(spelled: bool, opset: int, scale: float | None = None):
    torch.manual_seed(0)
    m = Block(spelled, scale).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(m, (torch.randn(2, 7, E),), dynamo=True, opset_version=opset, verbose=False,
                                 dynamic_shapes=({0: torch.export.Dim("batch")},))
    model = prog.model_proto
    x = torch.randn(3, 7, E)  # another batch size than at export: the batch dim is symbolic
    (got,), g = run_ir(model, {model.graph.input[0].name: x.numpy()})
    np.testing.assert_allclose(got, m(x).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert g.inputs[0].shape[0] == "batch"
    sites = g.attention_ops()
    assert len(sites) == 1, g.diagnostics
    spec = sites[0].spec
    assert (spec.num_heads, spec.head_dim, spec.mask.causal) == (H, E // H, True)
    assert spec.scale == pytest.approx(scale if scale is not None else (E // H) ** -0.5, rel=1e-6)
    assert not [n for n in g.nodes if n.kind == "Softmax"]


def test_sdpa_exported_as_onnx_attention_23():
    _export_and_check(spelled=False, opset=23)


def test_spelled_out_attention_exported_at_opset_18_is_lifted():
    _export_and_check(spelled=True, opset=18)


@pytest.mark.slow
@pytest.mark.parametrize("spelled,opset,scale", [(False, 18, 0.5), (False, 23, 0.5), (True, 23, None)])
def test_more_export_styles(spelled, opset, scale):
    _export_and_check(spelled, opset, scale)
