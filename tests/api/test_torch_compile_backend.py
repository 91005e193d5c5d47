"""`torch.compile(model, backend="attncc")` through the `torch_dynamo_backends` entry point (run in a fresh
interpreter that never imports attncc): a model with a graph break compiles each subgraph with attncc and
matches eager; dynamic sizes stay dynamic; a subgraph attncc cannot compile runs eagerly with a warning."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from attncc.dynamo_backend import AttnccFallbackWarning

MODEL = textwrap.dedent('''
    import torch

    class Block(torch.nn.Module):
        """attention, a graph break, then an MLP."""
        def __init__(self):
            super().__init__()
            self.qkv, self.out, self.mlp = torch.nn.Linear(16, 48), torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

        def forward(self, x):
            q, k, v = self.qkv(x).view(x.shape[0], x.shape[1], 3, 2, 8).permute(2, 0, 3, 1, 4)
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = x + self.out(a.transpose(1, 2).reshape(x.shape))
            torch._dynamo.graph_break()   # as an unsupported Python call would: two subgraphs
            h = h * 2
            return h + torch.nn.functional.gelu(self.mlp(h))
''')
exec(MODEL)  # defines Block here too


@pytest.mark.slow
def test_entry_point_compiles_each_subgraph_and_matches_eager():
    """In a fresh interpreter: backend="attncc" resolves without importing attncc; both subgraphs are attncc's."""
    script = MODEL + textwrap.dedent('''
        import sys
        torch.manual_seed(0)
        m = Block().eval()
        x = torch.randn(2, 5, 16)
        assert "attncc" not in sys.modules
        with torch.no_grad():
            want = m(x)
            got = torch.compile(m, backend="attncc")(x)
        assert "attncc" in sys.modules   # loaded through the entry point
        from torch._dynamo.utils import counters
        assert counters["stats"]["unique_graphs"] >= 2, dict(counters["stats"])
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        print("ok", dict(counters["stats"]))
    ''')
    r = subprocess.run([sys.executable, "-W", "error::attncc.dynamo_backend.AttnccFallbackWarning", "-c", script],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


@pytest.mark.slow
def test_dynamic_sizes_reuse_one_compiled_subgraph(monkeypatch):
    import attncc.dynamo_backend as be

    calls = []
    real = be.attncc_backend
    monkeypatch.setattr(be, "attncc_backend", lambda gm, ex, **kw: calls.append(gm) or real(gm, ex, **kw))
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = Block().eval()
    f = torch.compile(m, backend=be.attncc_backend, dynamic=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", AttnccFallbackWarning)
        for seq in (5, 9, 3):
            x = torch.randn(2, seq, 16)
            torch.testing.assert_close(f(x), m(x), rtol=1e-4, atol=1e-5)
    assert len(calls) == 2   # the two subgraphs, compiled once each for every length
    torch._dynamo.reset()


def test_a_subgraph_attncc_cannot_compile_runs_eagerly_with_a_warning():
    from attncc.dynamo_backend import attncc_backend

    class Odd(torch.nn.Module):
        def forward(self, x):
            return torch.special.bessel_j0(x) + 1   # no attncc converter

    torch._dynamo.reset()
    x = torch.randn(3, 4)
    with torch.no_grad(), pytest.warns(AttnccFallbackWarning, match="runs eagerly"):
        got = torch.compile(Odd(), backend=attncc_backend)(x)
    torch.testing.assert_close(got, torch.special.bessel_j0(x) + 1)
    torch._dynamo.reset()
