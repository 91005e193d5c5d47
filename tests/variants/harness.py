"""Shared check for every variant: module vs IR interpreter vs compiled output, and the imported spec."""
from __future__ import annotations

import functools
import os

import numpy as np
import torch

import attncc
from attncc.ir.interpreter import run_graph

RTOL, ATOL = 1e-4, 1e-5


@functools.lru_cache(maxsize=1)
def compile_targets() -> tuple[str, ...]:
    """reference and cpu. The cpu backend is part of attncc: an import failure is a test failure, not a silent skip."""
    from attncc.backends import get_backend

    get_backend("cpu")
    return ("reference", "cpu")


def field(spec, path: str):
    """spec field by dotted path, e.g. 'kv_source.kind' or 'mask.causal'."""
    obj = spec
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def check_variant(module: torch.nn.Module, inputs: tuple, expect: dict, attention_ops: int = 1, seed_outputs=None,
                  cpu: bool | None = None):
    """Assert one imported Attention op with `expect` spec fields and module == interpreter == compiled (fp32 1e-4).

    `cpu` (default: batch == 2, the first shape of each test, in runs that select `-m slow`) also compiles for the
    cpu target; TVM kernel builds cost seconds each, so the default suite checks module == interpreter here and
    leaves the cpu target of every variant to tests/variants/test_identities.py and test_decompose.py.
    """
    if cpu is None:
        cpu = inputs[0].shape[0] == 2 and os.environ.get("ATTNCC_TESTS_SLOW") == "1"
    module.eval()
    with torch.no_grad():
        want = module(*inputs)
    want = want.numpy() if seed_outputs is None else seed_outputs
    graph = attncc.import_model(module, inputs)
    atts = graph.attention_ops()
    assert len(atts) == attention_ops, f"expected {attention_ops} Attention ops, found {len(atts)}"
    spec = atts[0].op.spec
    for path, value in expect.items():
        assert field(spec, path) == value, f"spec.{path} = {field(spec, path)!r}, expected {value!r}"
    arrays = [x.numpy() for x in inputs]
    got = run_graph(graph, arrays)[0]
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg="IR interpreter vs module")
    for target in compile_targets():
        if target == "cpu" and not cpu:
            continue
        cm = attncc.compile(graph, target=target)  # the imported graph: export once
        assert len(cm.graph.attention_ops()) == attention_ops
        out = cm(*arrays)
        np.testing.assert_allclose(out, want, rtol=RTOL, atol=ATOL, err_msg=f"compiled ({target}) vs module")
        if target == "cpu":   # variants run decomposed on the TVM kernels; only recurrent linear rules keep the host
            fallback = [n for n in cm.executable.notes if "numpy reference" in n]
            recurrent = getattr(spec.kv_source, "update_rule", "") in ("delta", "gated_delta")
            assert bool(fallback) == recurrent, fallback or "expected the host-reference fallback"
    return graph, spec


def rand(*shape, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g)
