"""Every test model and variant compiles for mobile-cpu (slow: ~45 builds): the list of test_cuda_sweep.py
(cpu_graphs graphs, every variant case incl. the undecomposable ones, the examples/ torch models).

Per build: the export holds an aarch64 shared object (`readelf -h` says AArch64) with its .ll/.s sources;
no kernel fell back to attncc's numpy reference, except the delta-rule variants (undecomposable), whose
notes must say so. Numerics under qemu: test_mobile_cpu_emulated.py."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch

import attncc

try:
    from .cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
READELF = shutil.which("aarch64-linux-gnu-readelf") or shutil.which("readelf")


def _graphs():
    yield "mlp", mlp_block(), {"batch": 3}
    yield "mlp-fp16", mlp_block("float16"), {"batch": 2}
    yield "layout", layout_ops(), None
    yield "llama-block", llama_block(hidden=128, heads=4, kv_heads=2, seq=32, ffn=256), None
    for kw in (dict(causal=True), dict(mask="bool"), dict(mask="additive"), dict(kv_cache=True, causal=True),
               dict(rope=True, causal=True), dict(window=8, causal=True), dict(softcap=30.0), dict(layout="bshd"),
               dict(kv_lengths=True), dict(causal=True, alignment="top_left", sq=16), dict(hq=8, hkv=2, sq=1, skv=64),
               dict(dtype="float16", causal=True), dict(dtype="bfloat16", hq=8, hkv=1)):
        yield "attention-" + "-".join(f"{k}={v}" for k, v in kw.items()), attention_graph(**kw), None


def _variants():
    from tests.variants.decompose_cases import CASES, UNDECOMPOSABLE, graph_of

    for case in CASES + UNDECOMPOSABLE:
        spec, ins = case.build(0)
        yield "variant-" + case.name, graph_of(spec, ins), None


def _torch_models():
    from models import TinyLlamaPrefill, llama_block as example_block, tiny_llama

    block, inputs = example_block()
    yield "examples-llama-block", block, inputs
    lm = tiny_llama()
    ids = torch.randint(0, 512, (2, 16))
    yield "examples-tinyllama-prefill", TinyLlamaPrefill(lm), (ids,)
    past = torch.randn(len(lm.layers), 2, lm.kv_heads, 16, lm.head_dim)
    yield "examples-tinyllama-decode", lm, (ids[:, :1], past, past.clone())


CASES = list(_graphs()) + list(_variants()) + list(_torch_models())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None or READELF is None,
                    reason="aarch64-linux-gnu-gcc / readelf not installed (Debian gcc-aarch64-linux-gnu, binutils)")
@pytest.mark.parametrize("name,model,extra", CASES, ids=[c[0] for c in CASES])
def test_compiles_to_an_aarch64_library(tmp_path, name, model, extra):
    if isinstance(model, attncc.ir.Graph):
        cm = attncc.compile(model, target="mobile-cpu", options={"cache": False})
    else:
        cm = attncc.compile(model, extra, target="mobile-cpu", options={"cache": False})
    program = cm.executable.artifacts["program"]
    if not program.runners:   # symbolic dims: the shape-generic build happens for the first shapes seen
        dims = extra or {}
        program.runner_for(tuple(tuple(d if isinstance(d, int) else dims.get(d, 4) for d in v.shape)
                                 for v in cm.graph.inputs))
    notes = cm.executable.notes + [n for r in program.runners.values() for n in r.plan.notes]
    host_only = "linear-delta" in name or "gated_delta" in name   # delta rules: loud host fallback, no kernel
    reference_steps = [s["node"] for r in program.runners.values() for s in r.plan.steps if s["kind"] == "reference"]
    if host_only:
        assert reference_steps and [n for n in notes if "numpy reference" in n], notes
    else:
        assert not reference_steps, (reference_steps, notes)
        assert not [n for n in notes if "numpy reference" in n], notes
    cm.export(str(tmp_path))
    libs = sorted(tmp_path.glob("kernels_*.so"))
    assert libs or host_only, f"{name}: no kernel library"
    for lib in libs:
        head = subprocess.run([READELF, "-h", str(lib)], capture_output=True, text=True, check=True).stdout
        assert "AArch64" in head and "DYN" in head, (name, lib.name, head)
        assert lib.with_suffix(".ll").exists() and lib.with_suffix(".s").exists(), f"{name}: sources missing"
