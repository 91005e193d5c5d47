"""Identical layers build once: a 4-layer stack of identical blocks compiles to as many kernel functions
as one block (one function, many plan steps), and its outputs still match torch."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

import attncc
from attncc.backends.core.dedupe import kernel_count


class Block(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 2):
        super().__init__()
        self.norm, self.qkv, self.proj, self.heads = nn.LayerNorm(dim), nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return x + self.proj(torch.nn.functional.gelu(a.transpose(1, 2).reshape(b, n, d)))


def _plan_of(compiled):
    (runner,) = compiled.executable.artifacts["program"].runners.values()
    return runner.plan


def _compile_and_check(layers: int):
    torch.manual_seed(0)
    x = torch.randn(1, 16, 32)
    model = nn.Sequential(*[Block() for _ in range(layers)]).eval()
    compiled = attncc.compile(model, (x,), target="cpu", options={"cache": False})
    got = compiled(x)
    got = got[0] if isinstance(got, (list, tuple)) else got
    np.testing.assert_allclose(np.asarray(got), model(x).detach().numpy(), rtol=1e-4, atol=1e-4)
    return _plan_of(compiled)


def test_four_identical_layers_call_each_kernel_four_times():
    plan = _compile_and_check(4)
    uses = Counter(s["func"] for s in plan.steps if s.get("func"))
    assert set(uses) == set(plan.funcs) and len(plan.funcs) == kernel_count(plan)
    assert set(uses.values()) == {4}, uses   # one function per layer kernel, called by each of the 4 layers


@pytest.mark.slow
def test_four_layers_build_as_many_kernels_as_one():
    one, four = _compile_and_check(1), _compile_and_check(4)
    calls = lambda p: sum(1 for s in p.steps if s.get("func"))   # noqa: E731
    assert calls(four) == 4 * calls(one)                          # every layer still runs its own steps ...
    assert len(four.funcs) == len(one.funcs) == kernel_count(four) == kernel_count(one)   # ... on shared kernels
