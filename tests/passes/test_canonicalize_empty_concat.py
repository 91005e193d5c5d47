"""canonicalize drops zero-length Concat operands (and with them the empty Slice feeding them): a
partial-rotary decoder whose rotary dim is the whole head splits off an empty pass-through part, which
the cpu backend cannot even allocate ("expected to be compact array")."""
import numpy as np
import pytest

from attncc.ir import Graph, run_graph
from attncc.ir.ops import Binary, Concat, Slice
from attncc.ir.passes import run_pipeline


def test_concat_with_an_empty_operand_becomes_the_other_operand():
    g = Graph("empty_concat")
    x = g.add_input("x", "float32", ("batch", 4, 24))
    rot = g.add1(Binary("mul"), [g.add1(Slice(2, 0, 24), [x]), g.add_constant(np.array(2.0, np.float32))])
    passthrough = g.add1(Slice(2, 24, None), [x], name="pass")
    assert passthrough.shape == ("batch", 4, 0)
    g.set_outputs([g.add1(Concat(-1), [rot, passthrough])])
    after = run_pipeline(g, "canonicalize")
    assert [n.op.op_name for n in after.topological() if n.op.op_name != "Constant"] == ["Binary"]
    data = np.random.default_rng(0).standard_normal((3, 4, 24)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(after, [data])[0], data * 2)


def test_only_the_empty_operands_are_dropped():
    g = Graph("three")
    x = g.add_input("x", "float32", (2, 6))
    parts = [g.add1(Slice(1, 0, 2), [x]), g.add1(Slice(1, 6, None), [x]), g.add1(Slice(1, 2, 6), [x])]
    g.set_outputs([g.add1(Concat(1), parts)])
    after = run_pipeline(g, "canonicalize")
    (cat,) = after.find("Concat")
    assert len(cat.inputs) == 2 and len(after.find("Slice")) == 2
    data = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.testing.assert_array_equal(run_graph(after, [data])[0], data)


def test_partial_rotary_with_the_whole_head_rotated_compiles_for_cpu(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))

    class PartialRotary(torch.nn.Module):
        """Phi-style: rotate the first `rotary_dim` channels (rotate-half), pass the rest through."""

        def __init__(self, rotary_dim):
            super().__init__()
            self.rotary_dim = rotary_dim

        def _rope(self, x, cos, sin):
            d = self.rotary_dim
            rot, passthrough = x[..., :d], x[..., d:]
            half = torch.cat([-rot[..., d // 2:], rot[..., :d // 2]], dim=-1)
            return torch.cat([rot * cos + half * sin, passthrough], dim=-1)

        def forward(self, q, k, v, cos, sin):
            q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
            return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 24, generator=g) for _ in range(3))
    angles = torch.arange(6)[:, None] * torch.rand(12, generator=g)[None]
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    model, inputs = PartialRotary(24).eval(), (q, k, v, cos, sin)
    compiled = attncc.compile(model, inputs, target="cpu")
    assert not [v for n in compiled.graph.nodes for v in n.outputs if 0 in v.shape]
    got = compiled(*inputs)
    with torch.no_grad():
        want = model(*inputs).numpy()
    np.testing.assert_allclose(got.numpy() if hasattr(got, "numpy") else got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("partial_rotary_factor", [1.0, 0.5])
def test_transformers_phi_partial_rotary_compiles_for_cpu(partial_rotary_factor, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    cfg = transformers.PhiConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=64, partial_rotary_factor=partial_rotary_factor,
                                 max_position_embeddings=64)
    cfg._attn_implementation = "eager"
    phi = transformers.PhiModel(cfg).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.phi = phi

        def forward(self, ids):
            return self.phi(input_ids=ids, use_cache=False).last_hidden_state

    model, ids = LastHidden().eval(), torch.randint(0, 64, (2, 6), generator=torch.Generator().manual_seed(0))
    compiled = attncc.compile(model, (ids,), target="cpu")
    assert len(compiled.graph.attention_ops()) == 1
    with torch.no_grad():
        want = model(ids).numpy()
    np.testing.assert_allclose(compiled(ids).numpy(), want, rtol=1e-4, atol=1e-5)
