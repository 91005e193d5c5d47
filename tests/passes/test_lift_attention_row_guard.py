"""lift-attention: the fully-masked-row guard Where(Equal(ReduceMax(bias), -inf), 0, probs) of ONNX's expanded
Attention is absorbed only when it tests the bias added to the scores and selects 0; diagnostics are not repeated."""
import numpy as np
import pytest

from attncc.ir.interpreter import run_graph
from attncc.ir.ops import Reduce, Softmax
from attncc.ir.passes import run_pipeline

from .lift_attention_graphs import Cast, Graph, Unary, Where, bin_, kt, lift, mm, not_lifted_reason, only_spec, scalar

B, H, S, D = 2, 2, 4, 8


def _guarded(guard_reads: str = "bias", fill: float = 0.0, casts: bool = False, eq_order: str = "max_first",
             axes=(-1,), keepdims: bool = True, softcap_after_bias: bool = False) -> Graph:
    """ONNX's expanded Attention tail: probs = Where(RowAllMasked, fill, Softmax(q·kᵀ·s + bias)); Y = probs·V."""
    g = Graph("guarded")
    q = g.add_input("q", "float32", (B, H, S, D))
    k = g.add_input("k", "float32", (B, H, S, D))
    v = g.add_input("v", "float32", (B, H, S, D))
    bias = g.add_input("bias", "float32", (B, 1, S, S))
    other = g.add_input("other", "float32", (B, 1, S, S))
    s = bin_(g, "mul", mm(g, q, kt(g, k), "qk"), scalar(g, 0.25), "scaled")
    if softcap_after_bias:  # tanh(x / 30) * 30 over scores + bias: masked entries become finite
        s = bin_(g, "add", s, bias, "biased")
        s = bin_(g, "mul", g.add1(Unary("tanh"), [bin_(g, "div", s, scalar(g, 30.0))]), scalar(g, 30.0), "capped")
    else:
        s = bin_(g, "add", s, bias, "biased")
    if casts:
        s = g.add1(Cast("float64"), [s], name="up")
    p = g.add1(Softmax(-1), [s], name="softmax", source="model.attn.softmax")
    if casts:
        p = g.add1(Cast("float32"), [p], name="down")
    row_max = g.add1(Reduce("max", tuple(axes), keepdims), [bias if guard_reads == "bias" else other], name="row_max")
    neg_inf = scalar(g, -np.inf, name="neg_inf")
    pair = [row_max, neg_inf] if eq_order == "max_first" else [neg_inf, row_max]
    all_masked = bin_(g, "eq", *pair, name="row_all_masked")
    safe = g.add1(Where(), [all_masked, scalar(g, fill, name="fill"), p], name="softmax_out_safe")
    g.set_outputs([mm(g, safe, v, "pv")])
    return g



def _masked_inputs(g: Graph, seed: int = 0) -> list[np.ndarray]:
    """Random q/k/v; a bias with one fully -inf row, one partly -inf row; `other` equal to bias except row 0."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((B, H, S, D)).astype(np.float32) for _ in range(3))
    bias = rng.standard_normal((B, 1, S, S)).astype(np.float32)
    bias[0, 0, 1, :] = -np.inf  # fully masked row
    bias[1, 0, 2, :2] = -np.inf  # partly masked row
    other = bias.copy()
    other[0, 0, 0, :] = -np.inf
    return [q, k, v, bias, other]


def _same_outputs(before: Graph, after: Graph) -> np.ndarray:
    ins = _masked_inputs(before)
    (want,), (got,) = run_graph(before, ins), run_graph(after, ins)
    assert got.dtype == want.dtype and not np.isnan(want).any()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    return got


@pytest.mark.parametrize("casts,eq_order,axes", [(False, "max_first", (-1,)), (True, "max_first", (-1,)),
                                                 (False, "inf_first", (3,))])
def test_guard_reading_the_added_bias_is_absorbed(casts, eq_order, axes):
    before = _guarded(casts=casts, eq_order=eq_order, axes=axes)
    after = lift(before)
    spec = only_spec(after)
    assert spec.mask.input == "additive" and spec.scale == 0.25
    assert not after.find("Where") and not after.find("Reduce")  # the guard is gone with its condition
    got = _same_outputs(before, after)
    assert np.all(got[0, :, 1] == 0)  # the fully masked row is zero in both


def test_guard_reading_another_tensor_is_not_absorbed():
    g = _guarded(guard_reads="other")
    after = run_pipeline(g, "lift-attention")
    reason = not_lifted_reason(after)
    assert "condition 'row_all_masked'" in reason and "'bias'" in reason
    _same_outputs(g, after)


@pytest.mark.parametrize("fill", [1.0, -1.0])
def test_guard_selecting_a_non_zero_value_is_not_absorbed(fill):
    g = _guarded(fill=fill)
    after = run_pipeline(g, "lift-attention")
    assert f"with {fill}, not 0" in not_lifted_reason(after)
    _same_outputs(g, after)


@pytest.mark.parametrize("kwargs,words", [({"keepdims": False}, "condition"), ({"axes": (2,)}, "condition"),
                                          ({"softcap_after_bias": True}, "before the softcap")])
def test_guard_over_other_rows_or_a_capped_bias_is_not_absorbed(kwargs, words):
    g = _guarded(**kwargs)
    after = run_pipeline(g, "lift-attention")
    assert words in not_lifted_reason(after)


def test_guard_with_probabilities_returned_is_not_absorbed():
    g = _guarded()
    g.set_outputs(g.outputs + [g.find("Where")[0].outputs[0]])
    assert "also a graph output" in not_lifted_reason(run_pipeline(g, "lift-attention"))


def test_where_reading_probabilities_as_true_branch_is_not_a_guard():
    g = _guarded()
    where = g.find("Where")[0]
    c, z, p = where.inputs
    where.inputs = [g.add1(Unary("not"), [c]), p, z]
    assert "not as the value kept" in not_lifted_reason(run_pipeline(g, "lift-attention"))


def test_running_twice_does_not_repeat_diagnostics():
    refused = run_pipeline(_guarded(fill=1.0), "lift-attention,lift-attention")
    assert [d["kind"] for d in refused.diagnostics] == ["attention-not-lifted"]
    lifted = run_pipeline(_guarded(), "lift-attention,lift-attention")
    assert [d["kind"] for d in lifted.diagnostics] == ["attention-lifted"]
