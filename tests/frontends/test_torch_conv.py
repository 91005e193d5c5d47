"""torch frontend: convolutions and pools import as Convolution / Pool and match eager torch through the
reference interpreter; transposed and 3-D convolutions fail naming the node and what is supported."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.export import Dim

from torch_helpers import assert_matches_eager, import_torch

from attncc.frontends.torch_converters import TorchImportError


class ConvNet2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
        self.grouped = nn.Conv2d(8, 12, (3, 1), padding="same", groups=4, bias=False)
        self.patch = nn.Conv2d(12, 16, 2, stride=2)

    def forward(self, x):
        y = self.grouped(self.dw(F.relu(self.stem(x))))
        a = F.max_pool2d(y, 3, 2, 1, ceil_mode=True)
        b = F.avg_pool2d(y, 2, 1, 1, count_include_pad=False)
        c = F.adaptive_avg_pool2d(self.patch(y), 1)
        d = F.adaptive_avg_pool2d(y, (2, 3))
        return a, b, c, d


class ConvNet1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(4, 8, 3, padding=1)
        self.c2 = nn.Conv1d(8, 8, 5, stride=2, padding=2, groups=2)

    def forward(self, x):
        y = F.gelu(self.c2(F.gelu(self.c1(x))))
        return F.max_pool1d(y, 2), F.avg_pool1d(y, 3, 1, 1), F.adaptive_avg_pool1d(y, 1)


def _ops(g):
    return [n.op.op_name for n in g.nodes]


def test_conv2d_and_pools_import_and_match_eager():
    m = ConvNet2d().eval()
    x = torch.randn(2, 3, 16, 12)
    g = import_torch(m, (x,))
    assert _ops(g).count("Convolution") == 4
    assert _ops(g).count("Pool") >= 2   # max and avg windows (global average pooling may become a mean)
    assert_matches_eager(g, m, (x,))


def test_conv1d_and_pools_import_and_match_eager():
    m = ConvNet1d().eval()
    x = torch.randn(2, 4, 20)
    g = import_torch(m, (x,))
    assert _ops(g).count("Convolution") == 2
    assert_matches_eager(g, m, (x,))


def test_stride_one_conv1d_keeps_a_dynamic_length():
    m = nn.Sequential(nn.Conv1d(4, 6, 3, padding=1), nn.GELU()).eval()
    x = torch.randn(2, 4, 16)
    g = import_torch(m, (x,), dynamic_shapes={"input": {2: Dim("seq", min=4, max=64)}})
    assert g.inputs[0].shape[2] == "seq" and g.outputs[0].shape[2] == "seq"
    x2 = torch.randn(2, 4, 9)
    assert_matches_eager(g, m, (x2,))


@pytest.mark.parametrize("module,match", [
    (nn.ConvTranspose2d(3, 4, 3), "transposed convolution .* not supported; supported: 1-D and 2-D"),
    (nn.Conv3d(3, 4, 3), "3-D convolution .* not supported; supported: 1-D"),
])
def test_unsupported_convolutions_name_the_node(module, match):
    x = torch.randn(1, 3, 6, 6) if isinstance(module, nn.ConvTranspose2d) else torch.randn(1, 3, 5, 5, 5)
    with pytest.raises(TorchImportError, match=match) as e:
        import_torch(module.eval(), (x,))
    assert "FX node" in str(e.value)
