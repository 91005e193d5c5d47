"""Acceptance: the default cpu pipeline fuses real torch models, not only hand-built graphs.

For the zoo's Llama and GPT-2 blocks (SDPA and eager forms), HF transformers' Llama and the bundled
examples/models.py LlamaStyleBlock: each layer ends with one Attention op (RoPE in spec.rope for the
Llama ones) fed by one packed QKV Linear, no Rotary/Expand left, and the interpreter still matches
torch eager and the imported graph.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import attncc
from attncc.ir import Graph, Node, run_graph
from tests.models import make_gpt2_block, make_llama_block

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example_block(variant: str):
    sys.path.insert(0, str(EXAMPLES))
    try:
        from models import LlamaStyleBlock
    finally:
        sys.path.remove(str(EXAMPLES))
    torch.manual_seed(0)
    return LlamaStyleBlock(hidden=64, heads=4, kv_heads=2, ffn=96, max_seq=64).eval(), (torch.randn(2, 24, 64),)


def _hf_llama(variant: str):
    pytest.importorskip("transformers")
    from tests.models.hf_llama import make_hf_llama
    return make_hf_llama(variant)


# (id, factory, variant, layers, has rope)
MODELS = [
    ("llama-sdpa", make_llama_block, "sdpa", 1, True),
    ("llama-eager", make_llama_block, "eager", 1, True),
    ("gpt2-sdpa", make_gpt2_block, "sdpa", 1, False),
    ("gpt2-eager", make_gpt2_block, "eager", 1, False),
    ("example-llama-block", _example_block, "sdpa", 1, True),
    ("hf-llama-sdpa", _hf_llama, "sdpa", 2, True),
    ("hf-llama-eager", _hf_llama, "eager", 2, True),
]
LAYOUT_OPS = ("Reshape", "Transpose", "Slice", "Cast")


def _projection(v) -> Node | None:
    """The Linear that `v` is a view/slice of (through layout ops), else None."""
    while v.producer is not None and v.producer.op.op_name in LAYOUT_OPS:
        v = v.producer.inputs[0]
    return v.producer if v.producer is not None and v.producer.op.op_name == "Linear" else None


def _packed_qkv(graph: Graph) -> list[Node]:
    """Linears whose output feeds the query, key and value of one attention op."""
    packed = []
    for att in graph.attention_ops():
        named = att.op.named_inputs(att)
        found = {id(p): p for p in (_projection(named[s]) for s in ("query", "key", "value"))}
        if len(found) == 1 and all(p is not None for p in found.values()):
            packed.extend(found.values())
    return packed


@pytest.mark.parametrize("make,variant,layers,rope", [m[1:] for m in MODELS], ids=[m[0] for m in MODELS])
def test_default_cpu_pipeline_fuses_each_layer(make, variant, layers, rope):
    model, inputs = make(variant)
    before = attncc.import_model(model, inputs)
    after = attncc.optimize(before, target="cpu")
    atts = after.attention_ops()
    assert len(atts) == layers and all(a.op.op_name == "Attention" for a in atts)
    assert all((a.spec.rope is not None) == rope for a in atts)
    packed = _packed_qkv(after)
    assert len(packed) == layers == len({id(p) for p in packed})  # one packed QKV projection per layer
    for a, p in zip(atts, packed):
        width = p.outputs[0].shape[-1]
        assert width == (a.spec.num_heads + a.spec.num_kv_heads) * a.spec.head_dim + a.spec.num_kv_heads * a.spec.v_head_dim
    assert not after.find("Rotary") and not after.find("Expand")

    arrays = [x.numpy() for x in inputs]
    with torch.no_grad():
        expected = model(*inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got, reference = run_graph(after, arrays), run_graph(before, arrays)
    for g, r, e in zip(got, reference, expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)


def test_example_block_compiles_for_cpu_with_fused_rope_and_qkv():
    model, (x,) = _example_block("sdpa")
    cm = attncc.compile(model, (x,), target="cpu")
    (att,) = cm.graph.attention_ops()
    assert att.spec.rope is not None and len(_packed_qkv(cm.graph)) == 1
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(cm(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["sdpa", pytest.param("eager", marks=pytest.mark.slow)])
def test_llama_with_dynamic_dims_keeps_rope_tables_computed_in_the_graph(variant):
    """Symbolic batch/seq/past: the RoPE tables stay IR ops (positions past..past+seq) and still fold into spec.rope."""
    from torch.export import Dim

    from attncc.frontends.torch_import import import_torch

    model, inputs = make_llama_block(variant)
    b, s, p = Dim("batch", max=8), Dim("seq", max=64), Dim("past", max=64)
    before = import_torch(model, inputs, dynamic_shapes=({0: b, 1: s}, {0: b, 2: p}, {0: b, 2: p}))
    after = attncc.optimize(before, target="cpu")
    (att,) = after.attention_ops()
    assert att.spec.rope is not None and att.spec.kv_cache and len(_packed_qkv(after)) == 1
    assert att.op.named_inputs(att)["rope_cos"].shape[1] == "seq"
    assert not after.find("Rotary") and not after.find("Expand")
    _, new = make_llama_block(variant, batch=3, seq=5, past=7)
    with torch.no_grad():
        expected = model(*new)
    for g, e in zip(run_graph(after, [x.numpy() for x in new]), expected):
        np.testing.assert_allclose(g, e.numpy(), rtol=1e-5, atol=1e-5)
