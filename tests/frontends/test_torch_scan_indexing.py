"""torch converters added for dynamic-shape HF models: cumsum (with its dtype argument and bool/int
promotion), arange up to a dim without a declared maximum, a size used as a tensor value without a
maximum, and advanced indexing with several index tensors on consecutive axes."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.export import Dim

from torch_helpers import assert_matches_eager, import_torch

from attncc.frontends.torch_converters import TorchImportError


class CumsumForms(nn.Module):
    def forward(self, x, ids):
        floats = torch.cumsum(x, dim=1) + torch.cumsum(x, dim=-1, dtype=torch.float64).float()
        counts = torch.cumsum(ids != 0, dim=-1)  # bool -> int64, as HF's packed-sequence detection does
        return floats, counts, torch.cumsum(ids, 0)


def test_cumsum_float_int_bool_and_dtype_argument():
    x, ids = torch.randn(2, 5, 3), torch.randint(0, 3, (2, 7))
    graph = import_torch(CumsumForms(), (x, ids))
    assert len(graph.find("CumSum")) == 4
    assert [v.dtype for v in graph.outputs] == ["float32", "int64", "int64"]
    assert_matches_eager(graph, CumsumForms(), (x, ids))


def test_cumsum_with_dynamic_dims():
    x, ids = torch.randn(2, 5, 3), torch.randint(0, 3, (2, 7))
    graph = import_torch(CumsumForms(), (x, ids), dynamic_shapes=(
        {0: Dim("batch"), 1: Dim("seq")}, {0: Dim("batch"), 1: Dim("tokens")}))
    assert graph.inputs[0].shape == ("batch", "seq", 3)
    for b, s, t in ((1, 2, 3), (3, 9, 4)):
        assert_matches_eager(graph, CumsumForms(), (torch.randn(b, s, 3), torch.randint(0, 3, (b, t))))


class Positions(nn.Module):
    """Position ids and a row index the HF way: arange up to the (unbounded) input dims."""

    def forward(self, x):
        pos = torch.arange(2, x.shape[1] + 2, device=x.device)
        rows = torch.arange(x.shape[0], device=x.device).float()
        return x + pos[None, :, None] * rows[:, None, None]


def test_arange_up_to_a_dim_without_maximum():
    graph = import_torch(Positions(), (torch.randn(2, 5, 3),),
                         dynamic_shapes={"x": {0: Dim("batch"), 1: Dim("seq")}})
    assert graph.find("CumSum")  # counted, not tabulated: no maximum was declared
    for b, s in ((1, 1), (4, 33)):
        assert_matches_eager(graph, Positions(), (torch.randn(b, s, 3),))


class SizeAsValue(nn.Module):
    def forward(self, x):
        return x * x.shape[1]


def test_symbolic_size_as_tensor_without_maximum():
    graph = import_torch(SizeAsValue(), (torch.randn(2, 5),), dynamic_shapes={"x": {1: Dim("seq")}})
    for s in (1, 40):
        assert_matches_eager(graph, SizeAsValue(), (torch.randn(2, s),))


class PairIndex(nn.Module):
    """x[rows, cols] with index tensors that broadcast against each other (HF mask construction), on the
    leading axes and on inner axes."""

    def forward(self, x, rows, cols):
        return x[rows[:, None], cols[None, :]], x[:, rows, cols]


def test_index_with_two_adjacent_index_tensors_and_negative_indices():
    x = torch.randn(4, 6, 5)
    rows, cols = torch.tensor([0, 3, 2, -1]), torch.tensor([1, -2, 0, 4])
    graph = import_torch(PairIndex(), (x, rows, cols))
    assert [v.shape for v in graph.outputs] == [(4, 4, 5), (4, 4)]
    assert len(graph.find("Gather")) == 2  # one gather each, at the merged axes' linear index
    assert_matches_eager(graph, PairIndex(), (torch.randn(4, 6, 5), rows, cols.flip(0)))


def test_index_with_non_adjacent_index_tensors_is_a_clear_error():
    class Apart(nn.Module):
        def forward(self, x, i, j):
            return x[i, :, j]

    with pytest.raises(TorchImportError, match=r"index tensors on axes \[0, 2\] that are not adjacent"):
        import_torch(Apart(), (torch.randn(3, 4, 5), torch.tensor([0, 1]), torch.tensor([2, 3])))
