"""Convolution / Pool cost rules against hand-counted FLOPs and bytes of known layers.

ViT-B/16's patch embedding (Dosovitskiy et al. 2021): a 16x16 stride-16 conv from 3 to 768 channels over a
224x224 image gives 14x14 = 196 patches; each output is a dot product of 3*16*16 = 768 taps, so
FLOPs = 2 * N * 768 * 196 * 3 * 256. Counted by hand here, not by the rule's formula.
"""
from __future__ import annotations

import numpy as np
import pytest

from attncc import ir
from attncc.cost_models import analyze_graph

F32 = 4


def _row(report, kind):
    (row,) = [r for r in report.rows if r.kind == kind]
    return row


def _conv_graph(x_shape, w_shape, stride, padding=0, groups=1, bias=True):
    g = ir.Graph("conv")
    x = g.add_input("x", "float32", x_shape)
    w = g.add_constant(np.zeros(w_shape, np.float32), "w")
    ins = [x, w] + ([g.add_constant(np.zeros(w_shape[0], np.float32), "b")] if bias else [])
    g.set_outputs([g.add1(ir.Convolution.make(len(w_shape) - 2, stride, padding, groups=groups), ins, name="conv")])
    return g


@pytest.mark.parametrize("n", [1, 4])
def test_vit_b16_patch_embedding_flops_and_bytes(n):
    g = _conv_graph(("n", 3, 224, 224), (768, 3, 16, 16), stride=16)
    row = _row(analyze_graph(g, "host-cpu", dims={"n": n}), "Convolution")
    assert row.cost.flops == 2 * n * 768 * 196 * 3 * 256
    assert row.cost.vector_flops == n * 768 * 196          # the bias add, one per output element
    image, weight, bias, out = n * 3 * 224 * 224, 768 * 3 * 256, 768, n * 768 * 196
    direct = (image + weight + bias + out) * F32
    columns = (3 * 256) * (n * 196) * F32                 # im2col: 768 rows x 196 patches per image
    d = row.cost.details
    assert d["algorithm"] == "im2col"                    # 768 output channels: the cpu target's matmul path
    assert d["direct_bytes"] == direct and d["im2col_matrix_bytes"] == columns
    assert sum(row.cost.bytes.values()) == direct + 2 * columns   # columns written once, read once
    assert row.cost.time_s > 0 and np.isfinite(row.cost.time_s)


def test_depthwise_3x3_is_priced_direct():
    # MobileNet-style depthwise 3x3 on 32 channels of 56x56, padding 1: 9 taps per output
    g = _conv_graph((2, 32, 56, 56), (32, 1, 3, 3), stride=1, padding=1, groups=32, bias=False)
    row = _row(analyze_graph(g, "host-cpu"), "Convolution")
    outputs = 2 * 32 * 56 * 56
    assert row.cost.flops == 2 * outputs * 9
    assert row.cost.details["algorithm"] == "direct"       # 1 output channel per group: no im2col matmul
    assert sum(row.cost.bytes.values()) == (2 * 32 * 56 * 56 + 32 * 9 + outputs) * F32


def test_conv1d_wav2vec2_feature_layer():
    # wav2vec2's first feature-extractor conv: 1 -> 512 channels, kernel 10, stride 5 over 16000 samples
    g = _conv_graph((1, 1, 16000), (512, 1, 10), stride=5, bias=False)
    row = _row(analyze_graph(g, "host-cpu"), "Convolution")
    frames = (16000 - 10) // 5 + 1                       # 3199
    assert row.cost.flops == 2 * 512 * frames * 10


def test_max_and_global_average_pool():
    g = ir.Graph("pools")
    x = g.add_input("x", "float32", (2, 64, 112, 112))
    m = g.add1(ir.Pool.make("max", (3, 3), (2, 2), 1), [x], name="maxpool")   # ResNet stem pool -> 56x56
    a = g.add1(ir.Pool.adaptive_avg((1, 1)), [m], name="gap")
    g.set_outputs([a])
    report = analyze_graph(g, "host-cpu")
    rows = [r for r in report.rows if r.kind == "Pool"]
    assert len(rows) == 2
    mx, gap = sorted(rows, key=lambda r: -r.cost.vector_flops)
    assert mx.cost.vector_flops == 2 * 64 * 56 * 56 * 9  # one compare per tap per output
    assert sum(mx.cost.bytes.values()) == (2 * 64 * 112 * 112 + 2 * 64 * 56 * 56) * F32
    assert gap.cost.vector_flops == 2 * 64 * (56 * 56 + 1)   # adds over the whole map, one divide per output
    assert sum(gap.cost.bytes.values()) == (2 * 64 * 56 * 56 + 2 * 64) * F32
