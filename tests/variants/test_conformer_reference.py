"""Efficient Conformer grouped / strided attention against the authors' code (burchim/EfficientConformer,
fixtures recorded from models/attentions.py at the commit named in each fixture), and identities vs torch SDPA."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import Grouped, Strided
from attncc.nn import GroupedAttention, StridedAttention, attention

from .harness import check_variant, rand
from .reference_fixtures import load


def _load_authors_weights(m, a):
    with torch.no_grad():
        m.qkv.weight.copy_(torch.from_numpy(np.concatenate([a[f"{n}_layer.weight"] for n in ("query", "key", "value")])))
        m.qkv.bias.copy_(torch.from_numpy(np.concatenate([a[f"{n}_layer.bias"] for n in ("query", "key", "value")])))
        m.o_proj.weight.copy_(torch.from_numpy(a["output_layer.weight"]))
        m.o_proj.bias.copy_(torch.from_numpy(a["output_layer.bias"]))
    return m.eval()


NAMES = ["grouped_g3_T7", "grouped_g2_T8", "strided_s2_T7"]


@pytest.mark.parametrize("cpu", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["reference", "cpu"])
@pytest.mark.parametrize("name", NAMES)
def test_matches_the_authors_code(name, cpu):
    a, meta = load(f"efficient_conformer_{name}")
    assert meta["source"] == "github.com/burchim/EfficientConformer" and len(meta["commit"]) == 40
    cls, feat = ((GroupedAttention, Grouped(meta["arg"])) if meta["class"] == "GroupedMultiHeadAttention"
                 else (StridedAttention, Strided(meta["arg"])))
    m = _load_authors_weights(cls(meta["dim_model"], meta["num_heads"], meta["arg"]), a)
    x = torch.from_numpy(a["x"])
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), a["out"], rtol=1e-4, atol=1e-5, err_msg="module vs the authors' code")
    # interpreter, reference target and (slow) cpu target against the authors' output; T=7 pads to a multiple of g.
    # The default suite reaches cpu through test_conformer_lowrank.py::test_grouped (module == cpu on T=7, g=3).
    check_variant(m, (x,), {"kv_source": feat}, seed_outputs=a["out"], cpu=cpu)


@pytest.mark.parametrize("seq", [6, 7])
def test_grouped_and_strided_factor_one_are_torch_sdpa(seq):
    q, k, v = rand(2, 4, seq, 8), rand(2, 4, seq, 8, seed=1), rand(2, 4, seq, 8, seed=2)
    want = F.scaled_dot_product_attention(q, k, v)
    for feat in (Grouped(1), Strided(1)):
        got = attention(AttentionSpec(4, 4, 8, kv_source=feat), query=q, key=k, value=v)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_grouped_equals_sdpa_on_tokens_regrouped_before_heads():
    """Identity from the paper's definition: with H = 1 grouping per head and per token coincide, so grouped
    attention is SDPA over (B, 1, S/g, g·D) of the concatenated tokens (here written with torch reshapes)."""
    q, k, v = rand(2, 1, 8, 8), rand(2, 1, 8, 8, seed=1), rand(2, 1, 8, 8, seed=2)
    want = F.scaled_dot_product_attention(*(t.reshape(2, 1, 4, 16) for t in (q, k, v)), is_causal=True)
    from attncc.ir.ops import MaskSpec
    got = attention(AttentionSpec(1, 1, 8, scale=16 ** -0.5, mask=MaskSpec(causal=True), kv_source=Grouped(2)),
                    query=q, key=k, value=v)
    torch.testing.assert_close(got, want.reshape(2, 1, 8, 8), rtol=1e-5, atol=1e-6)
