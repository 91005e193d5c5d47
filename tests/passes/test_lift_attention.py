"""lift-attention: scale spellings, the K-transpose rule, probabilities, non-attention softmax."""
import math

import numpy as np
import pytest

from attncc.ir.ops import Linear, Softmax
from attncc.ir.passes import run_pipeline

from .lift_attention_graphs import Graph, Transpose, basic, bin_, finish, kt, lift, mm, not_lifted_reason, only_spec, scalar


def test_default_scale_by_div_is_lifted_with_diagnostic():
    after = lift(basic(style="div"))
    spec = only_spec(after)
    assert (spec.num_heads, spec.num_kv_heads, spec.head_dim) == (4, 4, 8)
    assert spec.scale == pytest.approx(1 / math.sqrt(8), rel=1e-7)
    assert spec.mask.is_empty and spec.rope is None and not spec.kv_cache
    assert after.diagnostics == [{"kind": "attention-lifted", "node": "softmax", "spec": spec.summary()}]


@pytest.mark.parametrize("style", ["div", "mul"])
def test_non_default_scale_is_kept_exactly(style):
    spec = only_spec(lift(basic(scale=0.3, style=style)))
    assert spec.scale == pytest.approx(0.3, rel=1e-7)


def _scaled_operands(where: str) -> Graph:
    g = Graph("attn")
    q = g.add_input("q", "float32", (1, 2, 4, 16))
    k = g.add_input("k", "float32", (1, 2, 6, 16))
    v = g.add_input("v", "float32", (1, 2, 6, 16))
    if where == "q":
        q = bin_(g, "mul", q, scalar(g, 0.2))
        t = kt(g, k)
    elif where == "k":
        t = kt(g, bin_(g, "div", k, scalar(g, 5.0)))
    else:  # sqrt-scale on both, as the ONNX dynamo exporter writes it: Sqrt(1 / Sqrt(Cast(D)))
        d = g.add1(Binary("div"), [scalar(g, 1.0), g.add1(Unary("sqrt"), [g.add1(Cast("float32"), [
            g.add_constant(np.array(16, np.int64), "head_dim")])])])
        s = g.add1(Unary("sqrt"), [d])
        q = bin_(g, "mul", q, s)
        t = bin_(g, "mul", kt(g, k), s)
    finish(g, mm(g, q, t, "qk"), v)
    return g


from attncc.ir.ops import Binary, Cast, Unary  # noqa: E402


@pytest.mark.parametrize("where,scale", [("q", 0.2), ("k", 0.2), ("both", 0.25)])
def test_scale_on_q_on_k_and_sqrt_scale_on_both(where, scale):
    spec = only_spec(lift(_scaled_operands(where)))
    assert spec.scale == pytest.approx(scale, rel=1e-6)
    assert spec.head_dim == 16 and spec.num_heads == 2


def _permuted_k(perm) -> Graph:
    g = Graph("attn")
    q = g.add_input("q", "float32", (1, 4, 4, 4))
    k = g.add_input("k", "float32", (1, 4, 4, 4))
    v = g.add_input("v", "float32", (1, 4, 4, 4))
    t = g.add1(Transpose(perm), [k], name="k_perm")
    finish(g, bin_(g, "mul", mm(g, q, t, "qk"), scalar(g, 0.5)), v)
    return g


@pytest.mark.parametrize("perm", [(0, 1, 3, 2)])
def test_last_two_axes_transpose_matches(perm):
    only_spec(lift(_permuted_k(perm)))


@pytest.mark.parametrize("perm", [(0, 3, 2, 1), (0, 2, 1, 3), (0, 1, 2, 3)])
def test_permuted_k_that_is_not_a_last_two_axes_transpose_is_not_lifted(perm):
    after = lift(_permuted_k(perm))
    reason = not_lifted_reason(after)
    assert "does not swap K's last two axes" in reason


def test_untransposed_k_is_not_lifted():
    g = Graph("attn")
    q = g.add_input("q", "float32", (1, 2, 4, 4))
    k = g.add_input("k", "float32", (1, 2, 4, 4))
    v = g.add_input("v", "float32", (1, 2, 4, 4))
    finish(g, mm(g, q, k, "qk"), v)
    assert "not a transpose of K" in not_lifted_reason(lift(g))


def test_bshd_projection_with_gpt2_tf_style_key_transpose():
    """k (B, S, H, D) permuted (0, 2, 3, 1) to (B, H, D, S): the head dim lands in the contraction slot."""
    g = Graph("attn")
    x = g.add_input("x", "float32", (2, 5, 16))
    w = [g.add_constant(np.random.default_rng(i).standard_normal((16, 16)).astype(np.float32), f"w{i}") for i in range(3)]
    q, k, v = (g.add1(Reshape((2, 5, 4, 4)), [g.add1(Linear(), [x, wi])]) for wi in w)
    q = g.add1(Transpose((0, 2, 1, 3)), [q])
    v = g.add1(Transpose((0, 2, 1, 3)), [v])
    t = g.add1(Transpose((0, 2, 3, 1)), [k])
    out = finish(g, bin_(g, "div", mm(g, q, t, "qk"), scalar(g, 2.0)), v)
    g.set_outputs([g.add1(Reshape((2, 5, 16)), [g.add1(Transpose((0, 2, 1, 3)), [out])])])
    spec = only_spec(lift(g))
    assert spec.scale == 0.5 and spec.num_heads == 4


from attncc.ir.ops import Reshape  # noqa: E402


def test_probabilities_returned_too_are_not_lifted():
    g = basic()
    sm = g.find("Softmax")[0]
    g.set_outputs(g.outputs + [sm.outputs[0]])
    assert "also a graph output" in not_lifted_reason(lift(g))


def test_classifier_softmax_is_left_alone_with_diagnostic():
    g = Graph("clf")
    x = g.add_input("x", "float32", (2, 16))
    w = g.add_constant(np.ones((16, 10), np.float32), "w")
    logits = g.add1(Linear(), [x, w], name="head")
    g.set_outputs([g.add1(Softmax(-1), [logits], name="softmax", source="model.attn.softmax")])
    after = run_pipeline(g, "lift-attention")
    reason = not_lifted_reason(after)
    assert "Linear 'head'" in reason and after.find("Softmax")


def test_softmax_not_over_last_axis_is_left_alone():
    g = Graph("attn")
    q = g.add_input("q", "float32", (1, 2, 4, 8))
    k = g.add_input("k", "float32", (1, 2, 4, 8))
    v = g.add_input("v", "float32", (1, 2, 4, 8))
    p = g.add1(Softmax(2), [mm(g, q, kt(g, k))], name="softmax", source="model.attn.softmax")
    g.set_outputs([mm(g, p, v)])
    assert "not the last axis" in not_lifted_reason(lift(g))


def test_pipeline_with_constant_fold_and_canonicalize():
    after = run_pipeline(_scaled_operands("both"), "canonicalize,constant-fold,lift-attention,canonicalize")
    assert after.attention_ops()[0].spec.scale == pytest.approx(0.25, rel=1e-6)
