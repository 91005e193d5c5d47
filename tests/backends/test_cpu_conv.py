"""cpu target: Convolution (im2col + packed matmul, and the direct kernel) and Pool kernels match
torch.nn.functional (rtol 1e-4) over stride / padding / dilation / groups / depthwise / 1-D cases, with a
fused epilogue; every kernel is scheduled (no generic-schedule note)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc import ir
from attncc.backends.core.cache import CompileCache
from attncc.backends.cpu.backend import CpuBackend

RNG = np.random.default_rng(0)

CONVS = [  # name, x shape, weight shape, stride, padding, dilation, groups, bias, gelu epilogue
    ("patch", (1, 3, 32, 32), (16, 3, 8, 8), 8, 0, 1, 1, True, False),        # one image, P = 16: fused matmul
    ("stem", (2, 3, 9, 8), (8, 3, 3, 3), 2, 1, 1, 1, True, True),
    ("dilated", (2, 4, 9, 8), (8, 4, 3, 2), 1, (2, 1), (2, 1), 1, False, False),
    ("grouped", (2, 16, 7, 7), (32, 4, 3, 3), 1, 1, 1, 4, True, False),
    ("depthwise", (2, 6, 9, 8), (12, 1, 3, 3), 1, 1, 1, 6, True, True),
    ("conv1d", (2, 8, 13), (16, 8, 3), 2, 1, 1, 1, True, True),
    ("posconv1d", (2, 16, 12), (16, 2, 7), 1, 3, 1, 8, True, True),
]
POOLS = [  # name, x shape, (kind, kernel, stride, padding, dilation, count_include_pad, ceil_mode) or output size
    ("maxpool", (2, 3, 9, 8), ("max", (3, 3), 2, 1, 1, True, True)),
    ("avgpool", (2, 3, 9, 8), ("avg", (3, 2), (2, 1), (1, 0), 1, False, False)),
    ("avgpool1d", (2, 3, 11), ("avg", (3,), 2, 1, 1, True, True)),
    ("adaptive", (2, 3, 9, 8), (3, 2)),
    ("global", (2, 3, 9, 8), (1, 1)),
]


def _graph():
    g = ir.Graph("convs")
    inputs, want = [], []
    for name, xs, ws, stride, pad, dil, groups, bias, gelu in CONVS:
        x, w, b = (RNG.standard_normal(s).astype(np.float32) for s in (xs, ws, (ws[0],)))
        xv = g.add_input(name, "float32", xs)
        ins = [xv, g.add_constant(w, name + "_w")] + ([g.add_constant(b, name + "_b")] if bias else [])
        y = g.add1(ir.Convolution.make(len(xs) - 2, stride, pad, dil, groups), ins, name=name)
        if gelu:
            y = g.add1(ir.Activation("gelu"), [y], name=name + "_gelu")
        g.outputs.append(y)
        conv = F.conv2d if len(xs) == 4 else F.conv1d
        t = conv(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b) if bias else None, stride, pad, dil, groups)
        inputs.append(x)
        want.append((F.gelu(t) if gelu else t).numpy())
    for name, xs, spec in POOLS:
        x = RNG.standard_normal(xs).astype(np.float32)
        t = torch.from_numpy(x)
        xv = g.add_input(name, "float32", xs)
        if len(spec) == 7:
            kind, k, s, p, d, cip, ceil = spec
            op = ir.Pool.make(kind, k, s, p, d, cip, ceil)
            if kind == "max":
                ref = F.max_pool2d(t, k, s, p, d, ceil_mode=ceil)
            else:
                ref = (F.avg_pool2d if len(k) == 2 else F.avg_pool1d)(t, k, s, p, ceil, cip)
        else:
            op, ref = ir.Pool.adaptive_avg(spec), F.adaptive_avg_pool2d(t, spec)
        g.outputs.append(g.add1(op, [xv], name=name))
        inputs.append(x)
        want.append(ref.numpy())
    return g, inputs, want


@pytest.fixture(scope="module")
def case():
    return _graph()


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))


def _calls(ex):
    return [s["op"] for r in ex.artifacts["program"].runners.values() for s in r.plan.steps if s["kind"] == "call"]


@pytest.mark.parametrize("algorithm", ["auto", "direct"])
def test_convs_and_pools_match_torch(case, algorithm):
    g, inputs, want = case
    ex = CpuBackend(cache=CompileCache()).lower(g, {"conv_algorithm": algorithm})
    got = ex(inputs)
    names = [c[0] for c in CONVS] + [p[0] for p in POOLS]
    for name, a, b in zip(names, got, want):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    assert not [n for n in ex.notes if "generic schedule" in n], ex.notes
    calls = _calls(ex)
    if algorithm == "auto":   # im2col for the >= 8 channels per group convs; the depthwise one runs direct
        assert calls.count("Convolution(im2col)") == 5
        assert "Convolution+Activation" in calls           # the epilogue fused into the conv's kernel
    else:
        assert "Convolution(im2col)" not in calls


def test_bad_conv_algorithm_is_a_clear_error(case):
    g, _, _ = case
    with pytest.raises(Exception, match="conv_algorithm='winograd'; supported: auto, im2col, direct"):
        CpuBackend(cache=CompileCache()).lower(g, {"conv_algorithm": "winograd"})
