"""x ** c for a constant c lowers to multiplies / sqrt / a reciprocal (no powf call per element) where c is one of
the exponents torch's CPU pow kernel special-cases, and stays a pow call otherwise: numerics vs torch, TIR text."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import attncc
from attncc import ir
from attncc.ir.ops import Binary


class _Pow(torch.nn.Module):
    def __init__(self, exponent: float):
        super().__init__()
        self.exponent = exponent

    def forward(self, x):
        return x.pow(self.exponent)


def _tir(compiled) -> str:
    (runner,) = compiled.executable.artifacts["program"].runners.values()
    return "\n".join(f.script() for f in runner.plan.funcs.values())


@pytest.mark.parametrize("exponent, fast", [(2, True), (3, True), (0.5, True), (-1, True), (2.5, False)])
def test_constant_pow_matches_torch_and_avoids_powf(exponent, fast):
    torch.manual_seed(0)
    x = torch.randn(4, 37, 64) * 3
    if exponent in (0.5, 2.5):   # keep the real-valued domain (torch gives nan below 0; so do sqrt and powf)
        x = x.abs() + 0.01
    compiled = attncc.compile(_Pow(exponent), (x,), target="cpu", options={"cache": False})
    np.testing.assert_allclose(np.asarray(compiled(x)), x.pow(exponent).numpy(), rtol=1e-6, atol=0)
    assert ("T.pow(" in _tir(compiled)) is not fast


@pytest.mark.parametrize("shape", [(), (1,)])
def test_exponent_given_as_a_constant_input(shape):
    g = ir.Graph("pow")
    x = g.add_input("x", "float32", (8, 48))
    e = g.add_constant(np.full(shape, 2.0, np.float32), "two")
    g.set_outputs([g.add1(Binary("pow"), [x, e], name="sq")])
    compiled = attncc.compile(g, target="cpu", options={"cache": False})
    xs = np.random.default_rng(0).standard_normal((8, 48)).astype(np.float32)
    got = np.asarray(compiled(xs))
    np.testing.assert_allclose(got.reshape(8, 48), torch.from_numpy(xs).pow(2).numpy(), rtol=1e-6, atol=0)
    assert "T.pow(" not in _tir(compiled)


def test_builder_table_is_the_shared_decision():
    """The backend's constant-exponent builders cover exactly the exponents the grouping decision calls fast."""
    from attncc.backends.core.te_elementwise import _CONSTANT_POW
    from attncc.ir.kernels.pow_exponents import FAST_POW_EXPONENTS, INT_FAST_POW_EXPONENTS

    assert set(_CONSTANT_POW) == FAST_POW_EXPONENTS and INT_FAST_POW_EXPONENTS <= FAST_POW_EXPONENTS


@pytest.mark.parametrize("exponent, kernel_class", [(2, "elementwise"), (2.5, "elementwise.pow")])
def test_report_prices_a_pow_call_only_where_the_kernel_makes_one(exponent, kernel_class):
    x = torch.randn(4, 37, 64).abs() + 0.01
    report = attncc.analyze(_Pow(exponent), (x,), hardware="host-cpu")
    (row,) = report.rows
    assert row.cost.details["efficiency"]["kernel_class"] == kernel_class
