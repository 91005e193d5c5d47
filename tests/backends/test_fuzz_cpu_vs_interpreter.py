"""Property tests: random attention graphs (heads / kv heads, head dims, layouts, causal and window masks in
both alignments, bool/additive mask inputs, kv lengths, softcap, a KV cache, full and partial RoPE in both
styles, sequence lengths including 1 and primes, and
a random epilogue of elementwise / norm / reduce ops) give the same outputs on the cpu target as on the
reference interpreter (rtol 1e-4), and the IR text and JSON forms round-trip exactly.

Derandomized so CI is reproducible. The default run is small (a cpu build per example); `-m slow` runs a
larger search."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import attncc
from attncc import ir
from attncc.ir import AttentionSpec, MaskSpec, RopeSpec
from attncc.ir.ops import Activation, Binary, Reduce, RMSNorm, Softmax, Unary
from attncc.ir.ops.attention_spec import SpecError

LENGTHS = [1, 2, 3, 5, 7, 13, 31]          # 1 and primes: no tile divides them
EPILOGUES = ["tanh", "silu", "residual", "softmax", "rmsnorm", "sum", "max"]


@st.composite
def attention_graphs(draw):
    """(graph, inputs) for one random attention site plus up to two epilogue ops."""
    kv_heads = draw(st.sampled_from([1, 2, 3]))
    heads = kv_heads * draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([4, 5, 8, 16, 32]))
    v_dim = draw(st.sampled_from([head_dim, 8]))
    batch = draw(st.sampled_from([1, 2]))
    q_len = draw(st.sampled_from(LENGTHS))
    kv_len = q_len + draw(st.sampled_from([0, 0, 1, 4, 11]))
    layout = draw(st.sampled_from(["bhsd", "bshd"]))
    window = draw(st.sampled_from([None, None, 0, 1, 3]))
    mask = MaskSpec(causal=draw(st.booleans()), alignment=draw(st.sampled_from(["top_left", "bottom_right"])),
                    window_left=window, input=draw(st.sampled_from(["none", "none", "bool", "additive"])),
                    kv_lengths=draw(st.booleans()))
    softcap = draw(st.sampled_from([None, None, 5.0, 30.0]))
    order = draw(st.sampled_from(["before_mask", "after_mask"]))
    cache = draw(st.booleans())                    # past K/V concatenated in the op (present outputs)
    style = draw(st.sampled_from([None, None, "rotate_half", "interleaved"]))
    if style and not cache:
        kv_len = q_len                             # RoPE rotates q and the new k at the same positions
    rot = 2 * draw(st.integers(1, head_dim // 2)) if style else 0   # partial rotary included
    try:
        spec = AttentionSpec(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, v_head_dim=v_dim,
                             softcap=softcap, softcap_order=order, mask=mask, layout=layout, kv_cache=cache,
                             rope=RopeSpec(style, rot) if style else None)
    except SpecError:
        assume(False)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    new_len = q_len if cache else kv_len           # keys/values fed to the op (the rest is the past)

    def shape(h, s, d):
        return (batch, h, s, d) if layout == "bhsd" else (batch, s, h, d)

    g = ir.Graph("fuzz")
    arrays = []

    def inp(name, dtype, shp, data):
        arrays.append(data)
        return g.add_input(name, dtype, shp)

    def normal(name, shp):
        return inp(name, "float32", shp, rng.standard_normal(shp))

    ins = [normal("q", shape(heads, q_len, head_dim)), normal("k", shape(kv_heads, new_len, head_dim)),
           normal("v", shape(kv_heads, new_len, v_dim))]
    mshape = (draw(st.sampled_from([1, batch])), draw(st.sampled_from([1, heads])), q_len, kv_len)
    if mask.input == "bool":
        ins.append(inp("m", "bool", mshape, rng.random(mshape) < 0.8))
    elif mask.input == "additive":
        ins.append(normal("m", mshape))
    if mask.kv_lengths:
        ins.append(inp("lens", "int64", (batch,), rng.integers(1, kv_len + 1, batch)))
    if cache:
        ins += [normal("past_k", shape(kv_heads, kv_len - q_len, head_dim)),
                normal("past_v", shape(kv_heads, kv_len - q_len, v_dim))]
    if style:
        ang = rng.standard_normal((1, q_len, rot // 2)) * 3
        ins += [inp("cos", "float32", ang.shape, np.cos(ang)), inp("sin", "float32", ang.shape, np.sin(ang))]
    y, *present = g.add(ir.Attention(spec=spec), ins, name="attn")
    for kind in draw(st.lists(st.sampled_from(EPILOGUES), max_size=2)):
        if kind == "tanh":
            y = g.add1(Unary("tanh"), [y])
        elif kind == "silu":
            y = g.add1(Activation("silu"), [y])
        elif kind == "residual":
            y = g.add1(Binary("add"), [y, g.add_constant(rng.standard_normal(y.shape[-1]).astype(np.float32), "r")])
        elif kind == "softmax":
            y = g.add1(Softmax(axis=-1), [y])
        elif kind == "rmsnorm":
            y = g.add1(RMSNorm(), [y, g.add_constant((1 + rng.standard_normal(y.shape[-1])).astype(np.float32), "w")])
        elif y.rank > 2:
            y = g.add1(Reduce(kind, axes=(-1,), keepdims=False), [y])
    g.set_outputs([y] + present)
    g.verify()
    return g, [np.asarray(a, dtype=np.float32) if a.dtype == np.float64 else a for a in arrays]


def _interpreter_equals_cpu(case):
    g, arrays = case
    want = ir.run_graph(g, arrays)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")   # generic fallbacks are allowed here: the numerics are the property
        got = attncc.compile(g, target="cpu")(*arrays)
    got = list(got) if isinstance(got, (list, tuple)) else [got]
    assert len(got) == len(want)
    for a, e in zip(got, want):
        assert np.asarray(a).shape == e.shape
        np.testing.assert_allclose(np.asarray(a), e, rtol=1e-4, atol=1e-4, err_msg=ir.print_ir(g))


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "fuzz-cache"))


_FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=5, deadline=None, derandomize=True, suppress_health_check=_FIXTURE_OK)
@given(case=attention_graphs())
def test_cpu_matches_interpreter(case):
    _interpreter_equals_cpu(case)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=_FIXTURE_OK)
@given(case=attention_graphs())
def test_cpu_matches_interpreter_wide(case):
    _interpreter_equals_cpu(case)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=_FIXTURE_OK)
@given(case=attention_graphs())
def test_print_parse_and_json_round_trips_are_identities(case):
    g, arrays = case
    text = ir.print_ir(g)
    parsed = ir.parse_ir(text, constants=g.constants)
    assert ir.print_ir(parsed) == text
    js = ir.graph_to_json(g)
    back = ir.graph_from_json(js)
    assert ir.graph_to_json(back) == js and ir.print_ir(back) == text
    for other in (parsed, back):   # same computation, not only the same text
        for a, e in zip(ir.run_graph(other, arrays), ir.run_graph(g, arrays)):
            np.testing.assert_array_equal(a, e)
