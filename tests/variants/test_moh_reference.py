"""MoH against the authors' MoHAttention (SkyworkAI/MoH, MoH-DiT/models.py; fixtures recorded at the commit named
in each fixture): shared-head router, shared-vs-routed balancing router, routed top-k gates and their scales;
and the identity "all heads active == MHA" against torch SDPA."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import MoH
from attncc.nn import MixtureOfHeadsAttention, attention

from .harness import check_variant, rand
from .reference_fixtures import load


@pytest.mark.parametrize("cpu", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["reference", "cpu"])
@pytest.mark.parametrize("name", ["shared2_routed2", "shared0_routed3", "shared3_routed1"])
def test_moh_matches_the_authors_code(name, cpu):
    a, meta = load(f"moh_{name}")
    assert meta["source"] == "github.com/SkyworkAI/MoH" and len(meta["commit"]) == 40
    kw = meta["kwargs"]
    m = MixtureOfHeadsAttention(kw["dim"], kw["num_heads"], top_k=kw["routed_head"], shared_heads=kw["shared_head"],
                                routers="moh").load_moh(a).eval()
    x = torch.from_numpy(a["x"])
    with torch.no_grad():
        np.testing.assert_allclose(m(x).numpy(), a["out"], rtol=1e-4, atol=1e-5, err_msg="module vs the authors' MoH")
    check_variant(m, (x,), {"head_mixing": MoH(kw["routed_head"], kw["shared_head"], "moh")}, seed_outputs=a["out"],
                  cpu=cpu)


def test_fixed_routers_differ_from_the_authors_when_shared_heads_are_routed():
    """Pins the difference the doc table states: routers='fixed' weighs shared heads 1 (no shared/balancing router)."""
    a, _ = load("moh_shared2_routed2")
    fixed = MixtureOfHeadsAttention(48, 6, top_k=2, shared_heads=2).load_moh(a).eval()
    with torch.no_grad():
        out = fixed(torch.from_numpy(a["x"])).numpy()
    assert np.linalg.norm(out - a["out"]) / np.linalg.norm(a["out"]) > 0.05


@pytest.mark.parametrize("routers", ["fixed", "moh"])
def test_all_heads_active_is_torch_sdpa(routers):
    """top_k = all routed heads with equal logits: 'fixed' gives weight 1/R per routed head; 'moh' (x top_k) gives 1."""
    q, k, v = rand(2, 4, 7, 8), rand(2, 4, 7, 8, seed=1), rand(2, 4, 7, 8, seed=2)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=False)
    got = attention(AttentionSpec(4, 4, 8, head_mixing=MoH(4, 0, routers)), query=q, key=k, value=v,
                    head_logits=torch.zeros(2, 7, 4))
    torch.testing.assert_close(got, want * (1.0 if routers == "moh" else 0.25), rtol=1e-5, atol=1e-6)
    shared = attention(AttentionSpec(4, 4, 8, head_mixing=MoH(1, 3)), query=q, key=k, value=v,
                       head_logits=torch.zeros(2, 7, 4))   # 3 shared heads (weight 1) + the only routed head
    torch.testing.assert_close(shared, want, rtol=1e-5, atol=1e-6)
