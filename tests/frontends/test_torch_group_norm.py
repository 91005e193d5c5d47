"""torch frontend: GroupNorm (wav2vec2's feature extractor, conv nets) imports as a LayerNorm over each group
and matches eager torch, for 1-D and 2-D inputs, groups < channels and groups == channels, with and without affine."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from torch_helpers import assert_matches_eager, import_torch


@pytest.mark.parametrize("shape, groups, affine", [((2, 8, 5, 3), 4, True), ((2, 6, 11), 6, True),
                                                     ((3, 4, 7), 2, False)])
def test_group_norm_matches_eager(shape, groups, affine):
    torch.manual_seed(0)
    m = nn.GroupNorm(groups, shape[1], eps=1e-3, affine=affine).eval()
    if affine:  # torch initializes weight 1, bias 0: random values make the affine observable
        nn.init.normal_(m.weight)
        nn.init.normal_(m.bias)
    x = torch.randn(*shape) * 3 + 1
    g = import_torch(m, (x,))
    assert [n.op.op_name for n in g.nodes].count("LayerNorm") == 1
    assert_matches_eager(g, m, (x,))
