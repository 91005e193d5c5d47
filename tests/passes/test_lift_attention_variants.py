"""lift-attention layouts and K/V folds: repeat_kv -> GQA, RoPE (rotate-half, interleaved, partial),
KV cache, 3-D (B*H, S, D), 5-D grouped, cross-attention; golden IR before/after for three of them."""
import os
from pathlib import Path

import numpy as np
import pytest

from attncc.ir.ops import Concat, Gather, Slice, Unary, Where
from attncc.ir.printer import print_ir

from .lift_attention_graphs import Expand, Graph, Reshape, Transpose, bin_, finish, kt, lift, mm, only_spec, scalar

GOLDEN = Path(__file__).parent / "golden" / "lift_attention"


def check_golden(name: str, before: Graph, after: Graph) -> None:
    """Compare printed IR with the reviewed files (UPDATE_GOLDEN=1 rewrites them)."""
    for suffix, g in (("before", before), ("after", after)):
        path = GOLDEN / f"{name}.{suffix}.ir"
        text = print_ir(g)
        if os.environ.get("UPDATE_GOLDEN"):
            path.write_text(text)
        assert text == path.read_text(), f"{path} differs; rerun with UPDATE_GOLDEN=1 and review"


def repeat_kv(g: Graph, x, n: int):
    """HF repeat_kv: x[:, :, None].expand(B, Hkv, n, S, D).reshape(B, Hkv*n, S, D)."""
    b, h, s, d = x.shape
    e = g.add1(Expand((b, h, n, s, d)), [g.add1(Reshape((b, h, 1, s, d)), [x], name="unsqueeze")], name="expand")
    return g.add1(Reshape((b, h * n, s, d)), [e], name="repeat")


def gqa_graph() -> Graph:
    g = Graph("gqa")
    q = g.add_input("q", "float32", (1, 8, 4, 16))
    k = g.add_input("k", "float32", (1, 2, 4, 16))
    v = g.add_input("v", "float32", (1, 2, 4, 16))
    s = bin_(g, "mul", mm(g, q, kt(g, repeat_kv(g, k, 4)), "qk"), scalar(g, 0.25))
    finish(g, s, repeat_kv(g, v, 4))
    return g


def test_repeat_kv_expand_reshape_becomes_gqa_golden():
    before = gqa_graph()
    after = lift(before)
    spec = only_spec(after)
    assert (spec.num_heads, spec.num_kv_heads, spec.variant) == (8, 2, "gqa")
    att = after.attention_ops()[0]
    assert att.inputs[1].name == "k" and att.inputs[2].name == "v"  # the un-repeated K/V
    check_golden("repeat_kv_gqa", before, after)


def test_repeat_interleave_as_gather_becomes_gqa():
    g = Graph("gqa")
    q = g.add_input("q", "float32", (1, 6, 4, 8))
    k = g.add_input("k", "float32", (1, 2, 4, 8))
    v = g.add_input("v", "float32", (1, 2, 4, 8))
    idx = g.add_constant(np.repeat(np.arange(2), 3), "heads")
    k6, v6 = (g.add1(Gather(1), [x, idx]) for x in (k, v))
    finish(g, mm(g, q, kt(g, k6), "qk"), v6)
    assert only_spec(lift(g)).num_kv_heads == 2


def test_tiled_kv_heads_are_not_folded_into_gqa():
    """x.repeat(1, n, 1, 1) makes head h read h % Hkv: not GQA; attention is lifted as MHA on the copies."""
    g = Graph("tile")
    q = g.add_input("q", "float32", (1, 4, 3, 8))
    k = g.add_input("k", "float32", (1, 2, 3, 8))
    v = g.add_input("v", "float32", (1, 2, 3, 8))
    k4, v4 = (g.add1(Concat(1), [x, x]) for x in (k, v))
    finish(g, mm(g, q, kt(g, k4), "qk"), v4)
    spec = only_spec(lift(g))
    assert spec.num_kv_heads == 4


def _rotate_half(g, x):
    h = x.shape[-1] // 2
    x1 = g.add1(Slice(-1, 0, h), [x])
    x2 = g.add1(Slice(-1, h, None), [x])
    return g.add1(Concat(-1), [g.add1(Unary("neg"), [x2]), x1], name="rotate_half")


def _interleave(g, x):
    d = x.shape[-1]
    lead = tuple(x.shape[:-1])
    x1 = g.add1(Slice(-1, 0, None, 2), [x])
    x2 = g.add1(Slice(-1, 1, None, 2), [x])
    a = g.add1(Reshape(lead + (d // 2, 1)), [g.add1(Unary("neg"), [x2])])
    b = g.add1(Reshape(lead + (d // 2, 1)), [x1])
    return g.add1(Reshape(x.shape), [g.add1(Concat(-1), [a, b])], name="rotate_pairs")


def _apply_rope(g, x, cos, sin, style, rotary_dim):
    rot = x if rotary_dim == x.shape[-1] else g.add1(Slice(-1, 0, rotary_dim), [x])
    r = _rotate_half(g, rot) if style == "rotate_half" else _interleave(g, rot)
    y = bin_(g, "add", bin_(g, "mul", rot, cos), bin_(g, "mul", r, sin))
    if rotary_dim != x.shape[-1]:
        y = g.add1(Concat(-1), [y, g.add1(Slice(-1, rotary_dim, None), [x])])
    return y


def _tables(S, rd, style):
    inv = 1.0 / (10000 ** (np.arange(0, rd, 2) / rd))
    f = np.outer(np.arange(S), inv)
    f = np.concatenate([f, f], -1) if style == "rotate_half" else np.repeat(f, 2, -1)
    return np.cos(f).astype(np.float32)[None, None], np.sin(f).astype(np.float32)[None, None]


@pytest.mark.parametrize("style,rotary_dim", [("rotate_half", 16), ("rotate_half", 8), ("interleaved", 16)])
def test_rope_on_q_and_k_is_folded(style, rotary_dim):
    g = Graph("rope")
    q = g.add_input("q", "float32", (2, 4, 5, 16))
    k = g.add_input("k", "float32", (2, 2, 5, 16))
    v = g.add_input("v", "float32", (2, 2, 5, 16))
    c, s = _tables(5, rotary_dim, style)
    cos, sin = g.add_constant(c, "cos"), g.add_constant(s, "sin")
    qr, kr = (_apply_rope(g, x, cos, sin, style, rotary_dim) for x in (q, k))
    causal = np.triu(np.full((5, 5), -np.inf, np.float32), 1)
    sc = bin_(g, "add", bin_(g, "mul", mm(g, qr, kt(g, repeat_kv(g, kr, 2)), "qk"), scalar(g, 0.25)), g.add_constant(causal))
    finish(g, sc, repeat_kv(g, v, 2))
    after = lift(g)
    spec = only_spec(after)
    assert spec.rope is not None and (spec.rope.style, spec.rope.rotary_dim) == (style, rotary_dim)
    assert spec.num_kv_heads == 2 and spec.mask.causal
    att = after.attention_ops()[0]
    assert att.inputs[0].name == "q" and att.inputs[1].name == "k"


def test_rope_tables_not_duplicated_are_not_folded():
    g = Graph("rope")
    q = g.add_input("q", "float32", (1, 2, 4, 8))
    k = g.add_input("k", "float32", (1, 2, 4, 8))
    v = g.add_input("v", "float32", (1, 2, 4, 8))
    rng = np.random.default_rng(0)
    cos = g.add_constant(rng.standard_normal((1, 1, 4, 8)).astype(np.float32), "cos")
    sin = g.add_constant(rng.standard_normal((1, 1, 4, 8)).astype(np.float32), "sin")
    qr, kr = (_apply_rope(g, x, cos, sin, "rotate_half", 8) for x in (q, k))
    finish(g, mm(g, qr, kt(g, kr), "qk"), v)
    spec = only_spec(lift(g))  # still attention, but RoPE stays in the graph
    assert spec.rope is None


def test_kv_cache_concat_with_rope_and_repeat_kv():
    """Llama decode order: RoPE on the new k, Concat(past, new), repeat_kv; presents are returned."""
    g = Graph("llama")
    q = g.add_input("q", "float32", (1, 4, 2, 8))
    k = g.add_input("k", "float32", (1, 2, 2, 8))
    v = g.add_input("v", "float32", (1, 2, 2, 8))
    pk = g.add_input("past_k", "float32", (1, 2, 3, 8))
    pv = g.add_input("past_v", "float32", (1, 2, 3, 8))
    c, s = _tables(5, 8, "rotate_half")
    cos = g.add_constant(c[:, :, 3:], "cos")
    sin = g.add_constant(s[:, :, 3:], "sin")
    qr, kr = (_apply_rope(g, x, cos, sin, "rotate_half", 8) for x in (q, k))
    kc, vc = g.add1(Concat(2), [pk, kr], name="present_k"), g.add1(Concat(2), [pv, v], name="present_v")
    keep = g.add_constant(np.tril(np.ones((2, 5), bool), 3), "keep")
    sc = g.add1(Where(), [keep, mm(g, qr, kt(g, repeat_kv(g, kc, 2)), "qk"), scalar(g, -np.inf)])
    finish(g, sc, repeat_kv(g, vc, 2))
    g.set_outputs([g.outputs[0], kc, vc])
    after = lift(g)
    spec = only_spec(after)
    assert spec.kv_cache and spec.rope and spec.num_kv_heads == 2
    assert spec.mask.causal and spec.mask.alignment == "bottom_right"
    assert not after.find("Concat") or all(n.outputs[0] not in after.outputs for n in after.find("Concat"))


def flat3d_graph() -> Graph:
    """Attention on (B*H, S, D) tensors (fairseq / older torch MHA)."""
    g = Graph("flat")
    q = g.add_input("q", "float32", (2, 3, 5, 8))
    k = g.add_input("k", "float32", (2, 3, 5, 8))
    v = g.add_input("v", "float32", (2, 3, 5, 8))
    q3, k3, v3 = (g.add1(Reshape((6, 5, 8)), [x], name=f"{x.name}_flat") for x in (q, k, v))
    finish(g, mm(g, bin_(g, "mul", q3, scalar(g, 0.125)), kt(g, k3), "qk"), v3)
    return g


def test_3d_bh_merged_attention_golden():
    before = flat3d_graph()
    after = lift(before)
    spec = only_spec(after)
    assert (spec.num_heads, spec.scale) == (3, 0.125)
    assert after.attention_ops()[0].inputs[0].shape == (2, 3, 5, 8)
    check_golden("flat_bh", before, after)


def test_3d_with_symbolic_batch_reads_heads_from_the_merge():
    g = Graph("flat")
    ins = [g.add_input(n, "float32", ("B", 3, 5, 8)) for n in "qkv"]
    q3, k3, v3 = (g.add1(Reshape(("3*B", 5, 8)), [x]) for x in ins)
    finish(g, mm(g, q3, kt(g, k3), "qk"), v3)
    spec = only_spec(lift(g, env={"B": 2}))
    assert spec.num_heads == 3


def test_5d_grouped_query_attention():
    """(B, Hkv, G, S, D) queries against (B, Hkv, 1, S, D) keys: GQA without materialized copies."""
    g = Graph("gqa5")
    q = g.add_input("q", "float32", (2, 2, 3, 4, 8))
    k = g.add_input("k", "float32", (2, 2, 1, 6, 8))
    v = g.add_input("v", "float32", (2, 2, 1, 6, 8))
    finish(g, mm(g, q, kt(g, k), "qk"), v)
    spec = only_spec(lift(g))
    assert (spec.num_heads, spec.num_kv_heads) == (6, 2)


def test_kv_heads_on_the_inner_group_axis_are_refused():
    g = Graph("odd")
    q = g.add_input("q", "float32", (1, 2, 3, 4, 8))
    k = g.add_input("k", "float32", (1, 1, 3, 4, 8))
    v = g.add_input("v", "float32", (1, 1, 3, 4, 8))
    finish(g, mm(g, q, kt(g, k), "qk"), v)
    after = lift(g)
    assert not after.attention_ops()
    assert "h // group" in after.diagnostics[0]["reason"]


def cross_graph() -> Graph:
    """Decoder queries (S=3) attend to encoder memory (S=7), with an encoder padding mask, bshd projections."""
    g = Graph("cross")
    x = g.add_input("x", "float32", (2, 3, 4, 8))
    mem = g.add_input("memory", "float32", (2, 7, 4, 8))
    pad = g.add_input("memory_keep", "bool", (2, 1, 1, 7))
    q = g.add1(Transpose((0, 2, 1, 3)), [x], name="q")
    k = g.add1(Transpose((0, 2, 1, 3)), [mem], name="k")
    s = bin_(g, "div", mm(g, q, kt(g, k), "qk"), scalar(g, np.sqrt(8.0)))
    out = finish(g, g.add1(Where(), [pad, s, scalar(g, -1e9)]), k)
    g.set_outputs([g.add1(Transpose((0, 2, 1, 3)), [out], name="out_bshd")])
    return g


def test_cross_attention_golden():
    before = cross_graph()
    after = lift(before)
    spec = only_spec(after)
    assert spec.mask.input == "bool" and not spec.mask.causal and spec.num_heads == 4
    assert after.attention_ops()[0].inputs[1].shape == (2, 4, 7, 8)
    check_golden("cross_attention", before, after)
