"""Every test model and variant compiles for mobile-gpu (OpenCL C + launch table exported), and where an OpenCL
device builds kernels here (PoCL), runs and matches the interpreter (fp32 rtol 1e-4). Slow: ~60 builds.

Cases: the same list as the cuda sweep (cpu_graphs attention/mlp/layout/llama graphs, every variant case of
tests/variants/decompose_cases.py, the examples' Llama block and TinyLlama prefill/decode)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import attncc
from attncc.ir import run_graph

from cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block, rng_arrays
from test_mobile_gpu import opencl_problem

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
RTOL, ATOL = 1e-4, 1e-4


def _graphs():
    yield "mlp", mlp_block(), {"batch": 3}
    yield "mlp-fp16", mlp_block("float16"), {"batch": 2}
    yield "layout", layout_ops(), None
    yield "llama-block", llama_block(hidden=128, heads=4, kv_heads=2, seq=32, ffn=256), None
    for kw in (dict(causal=True), dict(mask="bool"), dict(mask="additive"), dict(kv_cache=True, causal=True),
               dict(rope=True, causal=True), dict(window=8, causal=True), dict(softcap=30.0), dict(layout="bshd"),
               dict(kv_lengths=True), dict(causal=True, alignment="top_left", sq=16), dict(hq=8, hkv=2, sq=1, skv=64),
               dict(mask="bool", mask_shape=(1, 1, 32, 32)), dict(mask="additive", mask_shape=(32, 32)),
               dict(dtype="float16", causal=True)):
        yield "attention-" + "-".join(f"{k}={v}" for k, v in kw.items()), attention_graph(**kw), None


def _variants():
    from tests.variants.decompose_cases import CASES, UNDECOMPOSABLE, graph_of

    for case in CASES + UNDECOMPOSABLE:
        spec, ins = case.build(0)
        yield "variant-" + case.name, graph_of(spec, ins), [ins[n] for n in spec.input_names()]


def _torch_models():
    from models import TinyLlamaPrefill, llama_block as example_block, tiny_llama

    block, inputs = example_block()
    yield "examples-llama-block", block, inputs
    lm = tiny_llama()
    ids = torch.randint(0, 512, (2, 16))
    yield "examples-tinyllama-prefill", TinyLlamaPrefill(lm), (ids,)
    past = torch.randn(len(lm.layers), 2, lm.kv_heads, 16, lm.head_dim)
    yield "examples-tinyllama-decode", lm, (ids[:, :1], past, past.clone())


def cases():
    torch.manual_seed(0)
    return list(_graphs()) + list(_variants()) + list(_torch_models())


CASES = cases()


@pytest.mark.slow
@pytest.mark.parametrize("name,model,extra", CASES, ids=[c[0] for c in CASES])
def test_compiles_and_matches_the_interpreter(tmp_path, name, model, extra):
    if isinstance(model, attncc.ir.Graph):
        graph = model
        arrays = extra if isinstance(extra, list) else rng_arrays(model, shapes=extra)
        cm = attncc.compile(model, target="mobile-gpu", options={"cache": False})
    else:
        cm = attncc.compile(model, extra, target="mobile-gpu", options={"cache": False})
        graph, arrays = cm.graph, [x.numpy() for x in extra]
    program = cm.executable.artifacts["program"]
    if any(isinstance(d, str) for v in graph.inputs for d in v.shape):   # per-shape: built at the first call
        program.runner_for(tuple(tuple(np.shape(a)) for a in arrays))
    notes = cm.executable.notes
    host = [n for n in notes if "numpy reference" in n]
    # the delta-rule recurrences have no TVM lowering on any target: a loud host fallback (no kernels)
    assert not host or "delta" in name, notes
    cm.export(str(tmp_path))
    sources = sorted(tmp_path.glob("**/kernels_*.cl"))
    assert (sources or host) and all("__kernel void" in p.read_text() for p in sources), name
    fp16 = any("half" in p.read_text() for p in sources)
    if opencl_problem() is not None or fp16:   # fp16: PoCL has no cl_khr_fp16 (compiled above, not run)
        return
    want = run_graph(graph, arrays)
    got = cm(*arrays)
    got = got if isinstance(got, (list, tuple)) else [got]
    for i, (a, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(w, np.float64), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{name} output {i}")
