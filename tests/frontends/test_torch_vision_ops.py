"""The vision-family ops (attncc/frontends/torch_converters/vision.py) match eager torch through the IR
interpreter: vector norms, bilinear / nearest resizing (sizes and scale factors, align_corners both ways),
as_strided windows, flip; unsupported forms name what is supported."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from torch_helpers import assert_matches_eager, import_torch

from attncc.frontends.torch_import import TorchImportError


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _check(fn, *shape):
    torch.manual_seed(0)
    model, inputs = Fn(fn).eval(), (torch.randn(*shape),)
    graph = import_torch(model, inputs)
    assert_matches_eager(graph, model, inputs)
    return graph


@pytest.mark.parametrize("order", [2, pytest.param(1, marks=pytest.mark.slow),
                                   pytest.param(float("inf"), marks=pytest.mark.slow)])
def test_vector_norm(order):
    _check(lambda x: F.normalize(x, dim=-1, p=order) if order == 2 else torch.linalg.vector_norm(x, order, dim=(1, 2)),
           2, 3, 5, 4)


@pytest.mark.parametrize("kwargs", [dict(size=(7, 9), align_corners=False),
                                    pytest.param(dict(size=(7, 9), align_corners=True), marks=pytest.mark.slow),
                                    dict(scale_factor=2.0, align_corners=False),
                                    pytest.param(dict(size=(3, 2), align_corners=False), marks=pytest.mark.slow)])
def test_bilinear_resize(kwargs):
    graph = _check(lambda x: F.interpolate(x, mode="bilinear", **kwargs), 2, 3, 5, 4)
    assert len(graph.find("MatMul")) == 2   # separable: one interpolation matrix per spatial axis


@pytest.mark.parametrize("kwargs", [dict(scale_factor=2.0), pytest.param(dict(size=(7, 3)), marks=pytest.mark.slow)])
def test_nearest_resize(kwargs):
    _check(lambda x: F.interpolate(x, mode="nearest", **kwargs), 1, 2, 5, 4)


def test_as_strided_windows_and_flip():
    _check(lambda x: torch.as_strided(x.contiguous(), (2, 3, 3), (20, 5, 1), 2), 2, 4, 5)
    _check(lambda x: x.flip(1, -1) + x.flip(0), 2, 3, 4)


def test_unsupported_vector_norm_order_names_the_supported_ones():
    with pytest.raises(TorchImportError, match="supported: 1, 2, inf"):
        import_torch(Fn(lambda x: torch.linalg.vector_norm(x, 3, dim=-1)), (torch.randn(2, 4),))
