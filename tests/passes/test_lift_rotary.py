"""lift-rotary and fold-kv-cache on hand-built SDPA-style graphs: what they match, what they leave alone."""
from __future__ import annotations

import numpy as np
import pytest

import attncc  # noqa: F401  (registers every pass)
from attncc.ir import (Attention, AttentionSpec, Binary, Concat, Graph, MaskSpec, Reshape, Transpose, Unary, print_ir,
                       run_graph)
from attncc.ir.passes._rewrite import SWAP_SEQ_HEADS
from attncc.ir.passes import run_pipeline
from attncc.pipelines import default_pipeline

from .layers import feed
from .rope_graphs import apply_rope, rope_tables, sdpa_with_kv_cache, sdpa_with_rope


def _same_outputs(before: Graph, after: Graph, **dims) -> None:
    inputs = feed(before, seed=2, dims=dims)
    for want, got in zip(run_graph(before, inputs), run_graph(after, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("style,rotary_dim", [("rotate_half", 8), ("rotate_half", 4), ("interleaved", 8),
                                              ("interleaved", 4)])
def test_spelled_out_rope_becomes_spec_rope(style, rotary_dim):
    g = sdpa_with_rope(style, rotary_dim)
    lifted = run_pipeline(g, "lift-rotary")
    assert len(lifted.find("Rotary")) == 2 and not lifted.find("Concat")
    fused = run_pipeline(lifted, "fuse-attention")
    (att,) = fused.attention_ops()
    assert (att.spec.rope.style, att.spec.rope.rotary_dim) == (style, rotary_dim)
    assert not fused.find("Rotary")
    _same_outputs(g, fused, S=7)


def test_static_tables_become_half_constants():
    g = sdpa_with_rope(seq=6)
    after = run_pipeline(g, "constant-fold,lift-rotary,fuse-attention")
    (att,) = after.attention_ops()
    named = att.op.named_inputs(att)
    for name in ("rope_cos", "rope_sin"):
        assert named[name].producer.op.op_name == "Constant" and named[name].shape == (1, 6, 4)
    assert [n.op.op_name for n in after.nodes if n.op.op_name != "Constant"] == ["Attention"]
    _same_outputs(g, after)


def test_tables_computed_from_inv_freq_in_the_graph():
    """Llama's rotary embedding: cat(freqs, freqs).cos() with freqs = positions x inv_freq, length symbolic."""
    g = Graph("computed_rope")
    q = g.add_input("q", "float32", (1, 4, "S", 8))
    k, v = (g.add_input(n, "float32", (1, 4, "S", 8)) for n in "kv")
    pos = g.add_input("positions", "float32", (1, "S", 1))
    inv = g.add_constant((1.0 / 10000 ** (np.arange(0, 8, 2) / 8)).astype(np.float32), "inv_freq")
    freqs = g.add1(Binary("mul"), [pos, inv], name="freqs")
    emb = g.add1(Concat(-1), [freqs, freqs], name="emb")
    cos, sin = (g.add1(Reshape((1, 1, "S", 8)), [g.add1(Unary(fn), [emb])], name=fn) for fn in ("cos", "sin"))
    qr, kr = (apply_rope(g, x, cos, sin) for x in (q, k))
    g.set_outputs([g.add1(Attention(spec=AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=8)), [qr, kr, v])])
    after = run_pipeline(g, "lift-rotary,fuse-attention")
    (att,) = after.attention_ops()
    assert att.spec.rope is not None and not after.find("Rotary")
    assert att.op.named_inputs(att)["rope_cos"].shape == (1, "S", 4)
    _same_outputs(g, after, S=9)


def test_rope_before_the_head_transpose_gpt_j_style():
    """GPT-J rotates (B, S, H, D) q/k with tables (1, S, 1, D), then transposes to (B, H, S, D)."""
    g = Graph("gptj_rope")
    q, k, v = (g.add_input(n, "float32", (2, 6, 4, 8)) for n in "qkv")
    c, s = rope_tables(6, 8, "interleaved")
    cos, sin = (g.add_constant(t.reshape(1, 6, 1, 8)) for t in (c, s))
    qr, kr = (g.add1(Transpose(SWAP_SEQ_HEADS), [apply_rope(g, x, cos, sin, "interleaved")]) for x in (q, k))
    vt = g.add1(Transpose(SWAP_SEQ_HEADS), [v])
    o = g.add1(Attention(spec=AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=8, mask=MaskSpec(causal=True))),
               [qr, kr, vt])
    g.set_outputs([g.add1(Transpose(SWAP_SEQ_HEADS), [o])])
    after = run_pipeline(g, default_pipeline("cpu"))
    (att,) = after.attention_ops()
    assert att.spec.rope.style == "interleaved" and att.spec.layout == "bshd"
    assert not after.find("Rotary") and not after.find("Transpose")
    _same_outputs(g, after)


def test_tables_not_duplicated_are_left_alone_with_a_reason():
    g = sdpa_with_rope(seq=6)
    rng = np.random.default_rng(0)
    for key in ("cos_cached", "sin_cached"):  # random tables: not a frequency held twice
        g.constants[key] = rng.standard_normal(g.constants[key].shape).astype(np.float32)
    after = run_pipeline(g, "lift-rotary")
    assert print_ir(after) == print_ir(g)
    assert any(d.get("kind") == "rope-not-lifted" and d["node"] == "attn" for d in after.diagnostics)


def test_query_and_key_rotated_by_different_tables_are_left_alone():
    g = Graph("two_tables")
    q = g.add_input("q", "float32", (1, 4, 6, 8))
    k, v = (g.add_input(n, "float32", (1, 4, 6, 8)) for n in "kv")
    (c1, s1), (c2, s2) = rope_tables(6, 8), rope_tables(12, 8)
    qr = apply_rope(g, q, g.add_constant(c1), g.add_constant(s1))
    kr = apply_rope(g, k, g.add_constant(c2[6:]), g.add_constant(s2[6:]))  # other positions
    g.set_outputs([g.add1(Attention(spec=AttentionSpec(num_heads=4, num_kv_heads=4, head_dim=8)), [qr, kr, v])])
    assert print_ir(run_pipeline(g, "lift-rotary")) == print_ir(g)


def test_rotated_key_read_elsewhere_keeps_its_rotary():
    """The rotated key is also returned: every reader gets the Rotary value; fuse-attention keeps it materialized."""
    g = sdpa_with_rope(seq=6)
    att = g.attention_ops()[0]
    g.set_outputs([att.outputs[0], att.inputs[1]])
    after = run_pipeline(g, "lift-rotary,fuse-attention")
    assert len(after.find("Rotary")) == 2 and after.attention_ops()[0].spec.rope is None
    _same_outputs(g, after)


def test_rope_with_kv_cache_through_the_default_pipeline():
    """SDPA on Concat(past, RoPE(k)): the cache is folded, then the RoPE on the new key."""
    g = Graph("rope_cache")
    q = g.add_input("q", "float32", (1, 4, 6, 8))
    k, v = (g.add_input(n, "float32", (1, 2, 6, 8)) for n in "kv")
    pk, pv = (g.add_input(n, "float32", (1, 2, 3, 8)) for n in ("past_k", "past_v"))
    c, s = rope_tables(9, 8)
    cos, sin = g.add_constant(c[3:]), g.add_constant(s[3:])  # the new tokens sit at positions 3..8
    qr, kr = (apply_rope(g, x, cos, sin) for x in (q, k))
    ck, cv = g.add1(Concat(2), [pk, kr]), g.add1(Concat(2), [pv, v])
    spec = AttentionSpec(num_heads=4, num_kv_heads=2, head_dim=8, mask=MaskSpec(causal=True, alignment="bottom_right"))
    g.set_outputs([g.add1(Attention(spec=spec), [qr, ck, cv], name="attn"), ck, cv])
    after = run_pipeline(g, default_pipeline("cpu"))
    (att,) = after.attention_ops()
    assert att.spec.kv_cache and att.spec.rope is not None and not after.find("Rotary") and not after.find("Concat")
    assert [o.producer for o in after.outputs] == [att] * 3
    _same_outputs(g, after)


def test_fold_kv_cache_leaves_mismatched_concats_alone():
    """Key = past 3 + new 6, value = past 4 + new 5: no single (past, new) split; and a concat of heads is no cache."""
    g = Graph("mismatch")
    q = g.add_input("q", "float32", (1, 4, 6, 8))
    ck = g.add1(Concat(2), [g.add_input("past_k", "float32", (1, 2, 3, 8)), g.add_input("k", "float32", (1, 2, 6, 8))])
    cv = g.add1(Concat(2), [g.add_input("past_v", "float32", (1, 2, 4, 8)), g.add_input("v", "float32", (1, 2, 5, 8))])
    heads = g.add1(Concat(1), [g.add_input("k1", "float32", (1, 1, 9, 8)), g.add_input("k2", "float32", (1, 1, 9, 8))])
    spec = AttentionSpec(num_heads=4, num_kv_heads=2, head_dim=8)
    g.set_outputs([g.add1(Attention(spec=spec), [q, ck, cv]), g.add1(Attention(spec=spec), [q, heads, cv])])
    assert print_ir(run_pipeline(g, "fold-kv-cache")) == print_ir(g)
