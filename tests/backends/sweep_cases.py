"""The models every target sweep compiles (test_cuda_sweep, test_mobile_cpu_sweep, test_mobile_gpu_sweep): the
cpu_graphs attention/mlp/layout/llama graphs, every variant case of tests/variants/decompose_cases.py (incl. the
undecomposable ones), and the examples' Llama block and TinyLlama prefill/decode.

Each case is (name, model, extra): an IR graph with its dim bindings (dict or None) or its input arrays (list),
or a torch module with its example inputs."""
from __future__ import annotations

import os
import sys

import torch

from cpu_graphs import attention_graph, layout_ops, llama_block, mlp_block

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))

ATTENTION = (dict(causal=True), dict(mask="bool"), dict(mask="additive"), dict(kv_cache=True, causal=True),
             dict(rope=True, causal=True), dict(window=8, causal=True), dict(softcap=30.0), dict(layout="bshd"),
             dict(kv_lengths=True), dict(causal=True, alignment="top_left", sq=16), dict(hq=8, hkv=2, sq=1, skv=64),
             dict(dtype="float16", causal=True))
BFLOAT16 = (dict(dtype="bfloat16", hq=8, hkv=1),)
BROADCAST_MASKS = (dict(mask="bool", mask_shape=(1, 1, 32, 32)), dict(mask="additive", mask_shape=(32, 32)))


def _graphs(extra_attention):
    yield "mlp", mlp_block(), {"batch": 3}
    yield "mlp-fp16", mlp_block("float16"), {"batch": 2}
    yield "layout", layout_ops(), None
    yield "llama-block", llama_block(hidden=128, heads=4, kv_heads=2, seq=32, ffn=256), None
    for kw in ATTENTION + tuple(extra_attention):
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


def sweep_cases(extra_attention=()) -> list[tuple]:
    """Every sweep case; `extra_attention` adds attention_graph keyword sets a target needs beyond the common ones."""
    torch.manual_seed(0)
    return list(_graphs(extra_attention)) + list(_variants()) + list(_torch_models())
