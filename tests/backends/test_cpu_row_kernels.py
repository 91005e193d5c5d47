"""The cpu row kernels (norms, softmax) reduce a row in vector partials, and the RoPE kernel reads contiguous
vectors: checked on the scheduled TIR, and the compiled kernels against torch."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from tvm import s_tir, te

import attncc
from attncc import ir
from attncc.backends.core import te_layout, te_norm
from attncc.backends.cpu.schedules import schedule_rows
from attncc.ir.ops import LayerNorm, Rotary, RMSNorm, Softmax


def _loops_above(script: str, block: str) -> list[str]:
    """The loop lines (T.parallel / T.vectorized / range / T.grid) enclosing `block` in a TVMScript text."""
    lines = script.splitlines()
    at = next(i for i, line in enumerate(lines) if f'T.sblock("{block}")' in line)
    indent, loops = len(lines[at]) - len(lines[at].lstrip()), []
    for line in reversed(lines[:at]):
        depth = len(line) - len(line.lstrip())
        if depth < indent and line.lstrip().startswith("for "):
            loops.insert(0, line.strip())
            indent = depth
    return loops


@pytest.mark.parametrize("width, vectorized", [(512, True), (40, False)])
def test_rms_norm_sums_a_row_in_vector_partials(width, vectorized):
    x = te.placeholder((3, width), "float32", name="x")
    w = te.placeholder((width,), "float32", name="w")
    out = te_norm.rms_norm(RMSNorm(eps=1e-6), [x, w], (3, width), "float32", "out")
    sch = s_tir.Schedule(te.create_prim_func([x, w, out]))
    schedule_rows(sch, "out")
    script = sch.mod["main"].script()
    if vectorized:   # 16-lane partial sums inside the parallel row loop, then one combine
        loops = _loops_above(script, "out_sumsq_rf")
        assert "T.parallel" in loops[0] and "T.vectorized(16)" in loops[-1], loops
    else:            # 40 is no multiple of 16: the plain scalar reduction
        assert "out_sumsq_rf" not in script


def _graph(op, shape, n_params=0):
    rng = np.random.default_rng(0)
    g = ir.Graph("row")
    x = g.add_input("x", "float32", shape)
    params = [g.add_constant(rng.standard_normal(shape[-1]).astype(np.float32), f"p{i}") for i in range(n_params)]
    g.set_outputs([g.add1(op, [x, *params], name="row")])
    return g


def test_row_kernels_match_torch():
    x = torch.randn(2, 5, 512) * 3
    cases = [(RMSNorm(eps=1e-6), 1, lambda x, g: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * g),
             (LayerNorm(eps=1e-5), 2, lambda x, w, b: torch.nn.functional.layer_norm(x, (512,), w, b, 1e-5)),
             (Softmax(-1), 0, lambda x: torch.softmax(x, -1))]
    for op, n_params, ref in cases:
        g = _graph(op, (2, 5, 512), n_params)
        cm = attncc.compile(g, target="cpu", strict=True)   # strict: a schedule that fell back would raise
        params = [torch.from_numpy(g.constants[f"p{i}"]) for i in range(n_params)]
        torch.testing.assert_close(cm(x), ref(x, *params), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("head_dim, rotary_dim", [(64, 64), (64, 32)])
def test_rope_reads_contiguous_vectors_and_matches_torch(head_dim, rotary_dim):
    x = te.placeholder((1, 2, 4, head_dim), "float32", name="x")
    cos = te.placeholder((1, 4, rotary_dim // 2), "float32", name="cos")
    sin = te.placeholder((1, 4, rotary_dim // 2), "float32", name="sin")
    out = te_layout.rotary(Rotary(style="rotate_half", rotary_dim=rotary_dim), [x, cos, sin], x.shape, "float32", "out")
    body = next(line for line in te.create_prim_func([x, cos, sin, out]).script().splitlines()
                if line.strip().startswith("out["))
    # a select (or clamp) in an index makes the vectorized loop a gather of single elements
    assert not re.search(r"(x|cos|sin)\[[^\]]*(Select|min|max)\(", body), body

    t = torch.randn(1, 2, 4, head_dim)
    c, s = torch.rand(1, 4, rotary_dim // 2), torch.rand(1, 4, rotary_dim // 2)
    g = ir.Graph("rope")
    ins = [g.add_input(n, "float32", tuple(a.shape)) for n, a in (("x", t), ("cos", c), ("sin", s))]
    g.set_outputs([g.add1(Rotary(style="rotate_half", rotary_dim=rotary_dim), ins, name="rope")])
    got = attncc.compile(g, target="cpu", strict=True)(t, c, s)
    h = rotary_dim // 2
    cc, ss = c[:, None], s[:, None]
    t1, t2 = t[..., :h], t[..., h:rotary_dim]
    want = torch.cat([t1 * cc - t2 * ss, t2 * cc + t1 * ss, t[..., rotary_dim:]], -1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
