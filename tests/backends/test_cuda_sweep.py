"""Every test model and variant generates CUDA and compiles with nvcc for sm_80 and sm_90a (slow: ~100 builds).

Per build: the export holds a fatbin with an ELF for the arch and the CUDA source; no kernel fell back to the
numpy reference. Numerics run on a GPU (benchmarks/gpu_check.py) and, for the flash kernel, on PoCL
(test_cuda_flash_pocl.py)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

import attncc

from cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block, rng_arrays
from test_cuda_target import NVCC

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))


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
    out = [(n, g, dims) for n, g, dims in _graphs()]
    out += [(n, g, ins) for n, g, ins in _variants()]
    out += [(n, m, ins) for n, m, ins in _torch_models()]
    return out


CASES = cases()


@NVCC
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("name,model,extra", CASES, ids=[c[0] for c in CASES])
def test_generates_and_compiles(tmp_path, name, model, extra, arch):
    from attncc.backends.cuda.nvcc import fatbin_entries

    if isinstance(model, attncc.ir.Graph):
        cm = attncc.compile(model, target="cuda", options={"arch": arch, "cache": False})
        if any(isinstance(d, str) for v in model.inputs for d in v.shape):   # symbolic dims build at the first call
            with pytest.raises(RuntimeError, match="no CUDA device is present"):
                cm(*(extra if isinstance(extra, list) else rng_arrays(model, shapes=extra)))
    else:
        cm = attncc.compile(model, extra, target="cuda", options={"arch": arch, "cache": False})
    notes = cm.executable.notes
    host_only = "linear-delta" in name or "gated_delta" in name   # delta rules: loud host fallback, no kernel
    assert not [n for n in notes if "numpy reference" in n and not host_only], notes
    assert not host_only or [n for n in notes if "numpy reference" in n], notes
    cm.export(str(tmp_path))
    fatbins = sorted((tmp_path / "cuda").glob("kernels_*.fatbin"))
    assert fatbins or host_only, f"{name}: no kernels compiled"
    for fb in fatbins:
        elfs = [e["arch"] for e in fatbin_entries(fb.read_bytes()) if e["kind"] == "elf"]
        assert elfs == [int(arch[3:5])], (name, elfs)
        assert fb.with_suffix(".cu").exists()
