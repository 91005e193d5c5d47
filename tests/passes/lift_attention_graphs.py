"""Builders of spelled-out attention IR graphs for the lift-attention tests, and the checking helper."""
from __future__ import annotations

import math

import numpy as np

from attncc.ir.graph import Graph, Value
from attncc.ir.interpreter import run_graph
from attncc.ir.ops import Binary, Cast, Concat, Expand, MatMul, Reshape, Slice, Softmax, Transpose, Unary, Where
from attncc.ir.passes import run_pipeline
from attncc.ir.types import numpy_dtype


def mm(g: Graph, a: Value, b: Value, name: str = "matmul") -> Value:
    return g.add1(MatMul(), [a, b], name=name)


def bin_(g: Graph, fn: str, a: Value, b: Value, name: str | None = None) -> Value:
    return g.add1(Binary(fn), [a, b], name=name or fn)


def scalar(g: Graph, x: float, dtype: str = "float32", name: str = "c") -> Value:
    return g.add_constant(np.array(x, dtype=numpy_dtype(dtype)), name=name)


def kt(g: Graph, k: Value) -> Value:
    """kᵀ: swap the last two axes."""
    r = k.rank
    return g.add1(Transpose(tuple(range(r - 2)) + (r - 1, r - 2)), [k], name="k_t")


def finish(g: Graph, scores: Value, v: Value, cast_probs: str | None = None) -> Value:
    """softmax over the last axis, then @ v; sets the graph output."""
    p = g.add1(Softmax(-1), [scores], name="softmax", source="model.attn.softmax")
    if cast_probs:
        p = g.add1(Cast(cast_probs), [p], name="probs_cast")
    out = mm(g, p, v, "pv")
    g.set_outputs([out] + g.outputs[1:])
    return out


def basic(B=2, H=4, S=5, Skv=None, D=8, scale=None, style="div", dtype="float32") -> Graph:
    """softmax(q kᵀ / sqrt(D)) v on bhsd inputs, scale by Div (style="div") or Mul ("mul")."""
    Skv = Skv or S
    g = Graph("attn")
    q = g.add_input("q", dtype, (B, H, S, D))
    k = g.add_input("k", dtype, (B, H, Skv, D))
    v = g.add_input("v", dtype, (B, H, Skv, D))
    s = mm(g, q, kt(g, k), "qk")
    scale = 1 / math.sqrt(D) if scale is None else scale
    s = bin_(g, "div", s, scalar(g, 1 / scale, dtype)) if style == "div" else bin_(g, "mul", s, scalar(g, scale, dtype))
    finish(g, s, v)
    return g


def random_inputs(g: Graph, seed: int = 0, env: dict | None = None) -> list[np.ndarray]:
    """Inputs for `g`; bool inputs always keep key 0 so no softmax row is fully masked."""
    rng = np.random.default_rng(seed)
    env = env or {}
    out = []
    for v in g.inputs:
        shape = [env.get(d, 3) if isinstance(d, str) else d for d in v.shape]
        if v.dtype == "bool":
            a = rng.random(shape) > 0.3
            a[..., 0] = True
        else:
            a = rng.standard_normal(shape).astype(numpy_dtype(v.dtype))
        out.append(a)
    return out


def lift(g: Graph, pipeline: str = "lift-attention", rtol: float = 1e-5, atol: float = 1e-6, env=None):
    """Run the pipeline; check outputs are unchanged on random inputs; return the new graph."""
    after = run_pipeline(g, pipeline)
    ins = random_inputs(g, env=env)
    want, got = run_graph(g, ins), run_graph(after, ins)
    assert len(want) == len(got)
    for w, x in zip(want, got):
        assert w.shape == x.shape and w.dtype == x.dtype
        np.testing.assert_allclose(x.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol)
    return after


def only_spec(after: Graph):
    """The single Attention op's spec (asserts there is exactly one and no softmax is left)."""
    ops = after.attention_ops()
    assert len(ops) == 1, [d for d in after.diagnostics]
    assert not after.find("Softmax")
    return ops[0].spec


def not_lifted_reason(after: Graph) -> str:
    assert not after.attention_ops()
    diags = [d for d in after.diagnostics if d["kind"] == "attention-not-lifted"]
    assert len(diags) == 1, after.diagnostics
    assert diags[0]["node"] == "softmax" and diags[0]["source"] == "model.attn.softmax"
    return diags[0]["reason"]


__all__ = ["mm", "bin_", "scalar", "kt", "finish", "basic", "random_inputs", "lift", "only_spec", "not_lifted_reason",
           "Binary", "Cast", "Concat", "Expand", "Reshape", "Slice", "Transpose", "Unary", "Where", "Graph"]
