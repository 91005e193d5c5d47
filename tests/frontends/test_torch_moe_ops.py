"""MoE routing ops through the torch frontend — sort (stable, descending, NaN last), histc, scatter with a
value (DeepSeek's group mask) and grouped_mm (transformers' default experts path, torch._grouped_mm) —
match eager torch on the reference interpreter; a whole sorted-grouped MoE layer also compiled for cpu."""
from __future__ import annotations

import numpy as np
import pytest
import torch

try:
    from .torch_helpers import assert_matches_eager, import_torch, run_graph
except ImportError:  # tests/frontends is not a package
    from torch_helpers import assert_matches_eager, import_torch, run_graph


class Sort(torch.nn.Module):
    def __init__(self, dim: int, descending: bool):
        super().__init__()
        self.dim, self.descending = dim, descending

    def forward(self, x):
        values, indices = torch.sort(x, dim=self.dim, descending=self.descending, stable=True)
        return values, indices


@pytest.mark.parametrize("dim,descending", [(-1, False), (0, True)])
def test_sort_matches_torch_stable_sort_with_ties(dim, descending):
    x = torch.randint(0, 4, (5, 7, 3)).float()  # many ties: the stable order decides the indices
    x[1, 2, 0] = float("nan")
    x[3, 4, 1] = float("nan")
    model = Sort(dim, descending)
    graph = import_torch(model, (x,))
    got_values, got_indices = run_graph(graph, [x.numpy()])
    want_values, want_indices = model(x)
    np.testing.assert_array_equal(got_values, want_values.numpy())  # NaN positions included
    np.testing.assert_array_equal(got_indices, want_indices.numpy())


class ExpertSort(torch.nn.Module):
    def forward(self, ids):
        sorted_ids, perm = torch.sort(ids.reshape(-1))
        counts = torch.histc(sorted_ids.float(), bins=6, min=0, max=5)
        return sorted_ids, perm, counts, torch.cumsum(counts, 0, dtype=torch.int32)


def test_sort_and_histc_of_integer_expert_ids():
    ids = torch.randint(0, 6, (4, 2), generator=torch.Generator().manual_seed(3))
    graph = import_torch(ExpertSort(), (ids,))
    got = run_graph(graph, [ids.numpy()])
    sorted_ids, perm = torch.sort(ids.reshape(-1), stable=True)
    np.testing.assert_array_equal(got[0], sorted_ids.numpy())
    np.testing.assert_array_equal(got[1], perm.numpy())
    counts = torch.histc(sorted_ids.float(), bins=6, min=0, max=5)
    np.testing.assert_array_equal(got[2], counts.numpy())
    np.testing.assert_array_equal(got[3], torch.cumsum(counts, 0, dtype=torch.int32).numpy())


class Histc(torch.nn.Module):
    def forward(self, x):
        return torch.histc(x, bins=7, min=-1.0, max=2.5)


def test_histc_drops_out_of_range_and_counts_the_top_edge():
    x = torch.cat([torch.linspace(-2.0, 3.0, 41), torch.tensor([2.5, -1.0, 2.5])])
    graph = import_torch(Histc(), (x,))
    np.testing.assert_array_equal(run_graph(graph, [x.numpy()])[0], Histc()(x).numpy())


class GroupMask(torch.nn.Module):
    """DeepSeek-V3's group-limited routing: keep the experts of the top groups."""

    def forward(self, scores):
        group_scores = scores.view(-1, 4, 2).topk(2, dim=-1)[0].sum(dim=-1)
        group_idx = torch.topk(group_scores, k=2, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores)
        group_mask.scatter_(1, group_idx, 1)
        keep = group_mask.unsqueeze(-1).expand(-1, 4, 2).reshape(-1, 8)
        return scores.masked_fill(~keep.bool(), 0.0), group_mask


def test_scatter_value_builds_deepseek_group_mask():
    assert_matches_eager(import_torch(GroupMask(), (torch.randn(6, 8),)), GroupMask(), (torch.randn(6, 8),))


def _grouped_mm_op():
    """transformers' grouped matmul op: what its MoE models export in fp32 (torch._grouped_mm is bf16-only
    under export); a custom op whose schema matches torch._grouped_mm's."""
    pytest.importorskip("transformers")
    import transformers.integrations.moe  # noqa: F401  (registers torch.ops.transformers.grouped_mm_fallback)

    return torch.ops.transformers.grouped_mm_fallback


class GroupedMM(torch.nn.Module):
    def __init__(self, experts=4, k=8, n=5, dtype=torch.float32):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(experts, k, n).to(dtype))
        self.op = torch._grouped_mm if dtype == torch.bfloat16 else _grouped_mm_op()

    def forward(self, x, offs):
        return self.op(x, self.weight, offs=offs)


def _reference_grouped_mm(x, w, offs):
    out, start = torch.zeros(x.shape[0], w.shape[2]), 0
    for e, end in enumerate(offs.tolist()):
        out[start:end] = x[start:end] @ w[e]
        start = end
    return out


@pytest.mark.parametrize("offs", [[3, 3, 7, 10], [0, 6, 6, 6]])  # empty groups; rows past the last offset are 0
def test_grouped_mm_rows_use_their_expert(offs):
    torch.manual_seed(0)
    model = GroupedMM().eval()
    x, offs = torch.randn(10, 8), torch.tensor(offs, dtype=torch.int32)
    graph = import_torch(model, (x, offs))
    got = run_graph(graph, [x.numpy(), offs.numpy()])[0]
    # offsets are run-time data: one graph serves every split
    np.testing.assert_allclose(got, _reference_grouped_mm(x, model.weight.detach(), offs).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # the fp32 path above is the one transformers exports
def test_bf16_torch_grouped_mm_matches_reference():
    from attncc.compiled import to_numpy

    torch.manual_seed(0)
    model = GroupedMM(n=8, dtype=torch.bfloat16).eval()  # bf16 strides must be 16-byte multiples
    x, offs = torch.randn(10, 8).to(torch.bfloat16), torch.tensor([3, 3, 7, 10], dtype=torch.int32)
    graph = import_torch(model, (x, offs))
    got = run_graph(graph, [to_numpy(x), offs.numpy()])[0].astype(np.float32)
    want = _reference_grouped_mm(x.float(), model.weight.detach().float(), offs).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=5e-2)  # bf16 output rounding


class SortedMoE(torch.nn.Module):
    """transformers' grouped_mm experts path in miniature: top-2 router, sort by expert, grouped matmuls with
    histc/cumsum offsets, restore order, weighted sum over the two experts."""

    def __init__(self, hidden=16, inner=24, experts=4):
        super().__init__()
        self.router = torch.nn.Linear(hidden, experts, bias=False)
        self.up = torch.nn.Parameter(torch.randn(experts, hidden, inner) / 4)
        self.down = torch.nn.Parameter(torch.randn(experts, inner, hidden) / 4)
        self.experts = experts
        self.grouped_mm = _grouped_mm_op()

    def forward(self, x):
        probs = torch.softmax(self.router(x), dim=-1)
        weights, ids = torch.topk(probs, 2, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        ids_g, perm = torch.sort(ids.reshape(-1))
        offs = torch.cumsum(torch.histc(ids_g.float(), bins=self.experts, min=0, max=self.experts - 1), 0,
                            dtype=torch.int32)
        h = torch.nn.functional.silu(self.grouped_mm(x[perm // 2], self.up, offs=offs))
        out = self.grouped_mm(h, self.down, offs=offs) * weights.reshape(-1)[perm].unsqueeze(-1)
        inv = torch.empty_like(perm)
        inv[perm] = torch.arange(perm.size(0))
        return out[inv].view(x.shape[0], 2, -1).sum(1)


def test_sorted_grouped_moe_matches_eager():
    torch.manual_seed(0)
    model, x = SortedMoE().eval(), torch.randn(12, 16)
    assert_matches_eager(import_torch(model, (x,)), model, (x,))


@pytest.mark.slow  # ~15 s of TVM builds
def test_sorted_grouped_moe_compiles_for_cpu(tmp_path, monkeypatch):
    import attncc

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    model, x = SortedMoE().eval(), torch.randn(12, 16)
    compiled = attncc.compile(import_torch(model, (x,)), (x,), target="cpu")
    assert not [d for d in compiled.diagnostics if d["kind"] == "lowering"]
    other = torch.randn(12, 16)  # other data: other routing, same build
    with torch.no_grad():
        np.testing.assert_allclose(np.asarray(compiled(other)), model(other).numpy(), rtol=1e-4, atol=1e-5)


def test_grouped_mm_without_offsets_is_a_clear_error():
    class Bad(torch.nn.Module):
        def forward(self, a, b):
            return torch._grouped_mm(a, b)

    from attncc.frontends.torch_converters import TorchImportError

    a, b = torch.randn(2, 4, 8).to(torch.bfloat16), torch.randn(2, 8, 8).to(torch.bfloat16)
    with pytest.raises(TorchImportError, match="grouped_mm of .* supported: 2-D input"):
        import_torch(Bad(), (a, b))
