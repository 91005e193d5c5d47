"""Convolution and Pool: the reference interpreter matches torch.nn.functional (the independent oracle) on a
grid of stride / padding / dilation / groups / depthwise cases; verifier messages; print / JSON round-trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc import ir
from attncc.ir import IRError

RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def conv_graph(x_shape, w_shape, bias: bool, op) -> ir.Graph:
    g = ir.Graph()
    x = g.add_input("x", "float32", x_shape)
    w = g.add_input("w", "float32", w_shape)
    ins = [x, w] + ([g.add_input("b", "float32", (w_shape[0],))] if bias else [])
    g.set_outputs([g.add1(op, ins, name="conv")])
    return g


CONV2D = [  # (C_in, C_out, kernel, stride, padding, dilation, groups)
    (3, 8, (3, 3), 1, 0, 1, 1),
    (3, 8, (3, 3), 1, 1, 1, 1),
    (4, 6, (3, 2), (2, 1), (1, 0), 1, 1),
    (4, 8, (3, 3), 2, 2, 2, 2),
    (6, 6, (3, 3), 1, 1, 1, 6),          # depthwise
    (4, 8, (5, 5), 1, 2, 1, 4),          # depthwise, multiplier 2
    (3, 16, (4, 4), 4, 0, 1, 1),         # ViT patch embedding
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_matches_torch(case, bias):
    c_in, c_out, k, stride, pad, dil, groups = case
    x, w, b = _rand(2, c_in, 9, 8), _rand(c_out, c_in // groups, *k), _rand(c_out)
    op = ir.Convolution.make(2, stride, pad, dil, groups)
    g = conv_graph(x.shape, w.shape, bias, op)
    g.verify()
    got = ir.run_graph(g, [x, w] + ([b] if bias else []))[0]
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b) if bias else None,
                    stride, pad, dil, groups).numpy()
    assert got.shape == want.shape == tuple(g.outputs[0].shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", [(4, 8, 3, 1, 1, 1, 1), (80, 16, 3, 2, 1, 1, 1), (8, 8, 5, 1, 4, 2, 8),
                                  (8, 4, 4, 1, 2, 1, 2)])
def test_conv1d_matches_torch(case):
    c_in, c_out, k, stride, pad, dil, groups = case
    x, w, b = _rand(2, c_in, 11), _rand(c_out, c_in // groups, k), _rand(c_out)
    g = conv_graph(x.shape, w.shape, True, ir.Convolution.make(1, stride, pad, dil, groups))
    got = ir.run_graph(g, [x, w, b])[0]
    want = F.conv1d(*map(torch.from_numpy, (x, w, b)), stride, pad, dil, groups).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_asymmetric_padding_matches_torch_pad_then_conv():
    x, w = _rand(1, 2, 7, 6), _rand(3, 2, 3, 3)
    op = ir.Convolution(stride=(2, 1), padding=((0, 1), (2, 0)), dilation=(1, 1), groups=1)
    got = ir.run_graph(conv_graph(x.shape, w.shape, False, op), [x, w])[0]
    want = F.conv2d(F.pad(torch.from_numpy(x), (2, 0, 0, 1)), torch.from_numpy(w), stride=(2, 1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_symbolic_length_with_stride_one_keeps_a_symbolic_output():
    g = conv_graph(("B", 4, "T"), (8, 4, 3), True, ir.Convolution.make(1, 1, 1))
    assert g.outputs[0].shape == ("B", 8, "T")
    with pytest.raises(IRError, match="needs stride 1"):
        conv_graph(("B", 4, "T"), (8, 4, 3), True, ir.Convolution.make(1, 2, 1))


def pool_graph(x_shape, op) -> ir.Graph:
    g = ir.Graph()
    x = g.add_input("x", "float32", x_shape)
    g.set_outputs([g.add1(op, [x], name="pool")])
    return g


POOL2D = [  # kernel, stride, padding, dilation, ceil_mode, count_include_pad
    ((2, 2), None, 0, 1, False, True),
    ((3, 3), 2, 1, 1, False, True),
    ((3, 3), 2, 1, 1, True, True),
    ((3, 3), 2, 1, 1, True, False),
    ((3, 2), (2, 1), (1, 0), 1, False, False),
    ((3, 3), 1, 1, 2, False, True),
]


@pytest.mark.parametrize("case", POOL2D)
def test_pool2d_matches_torch(case):
    k, s, p, d, ceil, cip = case
    x = _rand(2, 3, 9, 8)
    t = torch.from_numpy(x)
    got_max = ir.run_graph(pool_graph(x.shape, ir.Pool.make("max", k, s, p, d, ceil_mode=ceil)), [x])[0]
    want_max = F.max_pool2d(t, k, s, p, d, ceil_mode=ceil).numpy()
    np.testing.assert_allclose(got_max, want_max, rtol=1e-6)
    if d == 1:
        got = ir.run_graph(pool_graph(x.shape, ir.Pool.make("avg", k, s, p, 1, cip, ceil)), [x])[0]
        want = F.avg_pool2d(t, k, s, p, ceil, cip).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", [(3, 2, 1, False, True), (4, 4, 0, True, False), (3, 2, 1, True, False)])
def test_pool1d_matches_torch(case):
    k, s, p, ceil, cip = case
    x = _rand(2, 3, 10)
    t = torch.from_numpy(x)
    got = ir.run_graph(pool_graph(x.shape, ir.Pool.make("avg", (k,), s, p, 1, cip, ceil)), [x])[0]
    np.testing.assert_allclose(got, F.avg_pool1d(t, k, s, p, ceil, cip).numpy(), rtol=1e-5, atol=1e-6)
    got = ir.run_graph(pool_graph(x.shape, ir.Pool.make("max", (k,), s, p, 1, ceil_mode=ceil)), [x])[0]
    np.testing.assert_allclose(got, F.max_pool1d(t, k, s, p, ceil_mode=ceil).numpy(), rtol=1e-6)


@pytest.mark.parametrize("out", [(1, 1), (3, 2), (9, 4)])
def test_adaptive_avg_pool2d_matches_torch(out):
    x = _rand(2, 3, 9, 8)
    got = ir.run_graph(pool_graph(x.shape, ir.Pool.adaptive_avg(out)), [x])[0]
    np.testing.assert_allclose(got, F.adaptive_avg_pool2d(torch.from_numpy(x), out).numpy(), rtol=1e-5, atol=1e-6)


def test_global_pool_of_a_symbolic_length():
    g = pool_graph(("B", 4, "T"), ir.Pool.adaptive_avg((1,)))
    assert g.outputs[0].shape == ("B", 4, 1)
    x = _rand(2, 4, 7)
    np.testing.assert_allclose(ir.run_graph(g, [x])[0], F.adaptive_avg_pool1d(torch.from_numpy(x), 1).numpy(),
                               rtol=1e-5)


@pytest.mark.parametrize("build,match", [
    (lambda: conv_graph((1, 4, 8, 8), (8, 3, 3, 3), False, ir.Convolution.make(2)), "input channels 4"),
    (lambda: conv_graph((1, 4, 8, 8), (6, 1, 3, 3), False, ir.Convolution.make(2, groups=4)), "not divisible by groups"),
    (lambda: conv_graph((1, 4, 8, 8, 8), (8, 4, 3, 3, 3), False, ir.Convolution.make(3)), "1-D .* and 2-D"),
    (lambda: conv_graph((1, 4, 8, 8), (8, 4, 3, 3), False, ir.Convolution(stride=(1,))), "stride must hold 2"),
    (lambda: conv_graph((1, 4, 2, 2), (8, 4, 3, 3), False, ir.Convolution.make(2)), "does not fit"),
    (lambda: pool_graph((1, 4, 9, 8), ir.Pool.adaptive_avg((2, 2))), "static multiple"),
    (lambda: pool_graph((1, 4, 9, 8), ir.Pool.make("avg", (3, 3), 1, 0, 2)), "max pooling only"),
    (lambda: pool_graph((1, 4, 9, 8), ir.Pool.make("sum", (3, 3))), "kind must be one of"),
])
def test_verifier_names_the_broken_rule(build, match):
    with pytest.raises(IRError, match=match) as e:
        build()
    assert "node '" in str(e.value)


def test_print_parse_and_json_roundtrip():
    g = ir.Graph()
    x = g.add_input("x", "float32", (1, 4, 9, 8))
    w = g.add_input("w", "float32", (8, 2, 3, 3))
    y = g.add1(ir.Convolution(stride=(2, 1), padding=((1, 0), (1, 1)), dilation=(1, 2), groups=2), [x, w], name="c")
    z = g.add1(ir.Pool.make("avg", (2, 2), 1, 1, count_include_pad=False, ceil_mode=True), [y], name="p")
    g.set_outputs([g.add1(ir.Pool.adaptive_avg((1, 1)), [z], name="gap")])
    text = ir.print_ir(g)
    assert '"padding": [[1, 0], [1, 1]]' in text
    assert ir.print_ir(ir.parse_ir(text)) == text
    back = ir.graph_from_json(ir.graph_to_json(g))
    assert ir.print_ir(back) == text
    assert back.nodes[0].op == g.nodes[0].op
    xs = [_rand(1, 4, 9, 8), _rand(8, 2, 3, 3)]
    np.testing.assert_array_equal(ir.run_graph(back, xs)[0], ir.run_graph(g, xs)[0])
