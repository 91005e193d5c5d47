"""CHAI online clustering (facebookresearch/chai llama.patch: heads clustered at the prompt, batch 1, from their
softmax probabilities over the first 5 tokens, cosine distance, average-linkage agglomerative clustering).
Oracle: scipy's cdist + scikit-learn's AgglomerativeClustering on probe probabilities computed with torch, fed to
the static-cluster module; identity: K = H clusters == plain causal MHA (torch SDPA)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attncc.cost_models.attention_cost import apply_feature_rules, plain_work
from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import CHAI
from attncc.nn import ClusteredHeadAttention

from .harness import check_variant, rand

cluster = pytest.importorskip("sklearn.cluster", reason="scikit-learn (test extra) is the clustering oracle")
distance = pytest.importorskip("scipy.spatial.distance", reason="scipy (with scikit-learn) gives cdist")

E, H = 48, 8


def _sklearn_clusters(m, x, k, probe=5):
    """The authors' recipe with their libraries: probe probabilities (torch), cdist cosine, sklearn average linkage."""
    with torch.no_grad():
        q, kk, _ = m.heads(x)
        p = torch.softmax(q[0, :, :probe] @ kk[0, :, :probe].transpose(-1, -2) / math.sqrt(E // H), -1)
    feats = p.reshape(H, -1).double().numpy()
    labels = cluster.AgglomerativeClustering(n_clusters=k, metric="precomputed", linkage="average").fit(
        distance.cdist(feats, feats, metric="cosine")).labels_
    return tuple(int(c) for c in labels)


def _same_partition(a, b) -> bool:
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


@pytest.mark.parametrize("k,seed", [(3, 0), (5, 1), (2, 2)])
def test_online_clusters_match_sklearn_and_the_static_form(k, seed):
    torch.manual_seed(seed)
    online = ClusteredHeadAttention(E, H, num_clusters=k).eval()
    x = rand(1, 11, E, seed=seed)
    with torch.no_grad():
        got = online(x)
    want_clusters = _sklearn_clusters(online, x, k)
    assert _same_partition(online.clusters, want_clusters), (online.clusters, want_clusters)
    assert len(set(online.clusters)) == k and online.spec.head_mixing.online_probe == 5
    static = ClusteredHeadAttention(E, H, clusters=want_clusters).eval()
    static.load_state_dict(online.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(got, static(x), rtol=1e-6, atol=1e-6)
        later = online(rand(1, 4, E, seed=9))       # later calls keep the request's assignment
    assert _same_partition(online.clusters, want_clusters) and later.shape == (1, 4, E)


@pytest.mark.parametrize("cpu", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["reference", "cpu"])
def test_online_assignment_compiles_as_static_chai(cpu):
    torch.manual_seed(3)
    m = ClusteredHeadAttention(E, H, num_clusters=3).eval()
    x = rand(1, 9, E, seed=3)
    with torch.no_grad():
        m(x)                                          # the prompt call clusters the heads
    check_variant(m, (x,), {"head_mixing": CHAI(m.clusters, 5)}, cpu=cpu)


def test_as_many_clusters_as_heads_is_causal_mha():
    m = ClusteredHeadAttention(E, H, num_clusters=H).eval()
    x = rand(1, 7, E, seed=4)
    with torch.no_grad():
        got = m(x)
        q, k, v = m.heads(x)
        want = m.o_proj(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(1, 7, E))
    assert sorted(set(m.clusters)) == list(range(H))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_online_needs_batch_one_and_a_long_enough_prompt():
    m = ClusteredHeadAttention(E, H, num_clusters=2)
    with pytest.raises(ValueError, match="batch 1"):
        m(rand(2, 8, E))
    with pytest.raises(ValueError, match="probe=5"):
        m(rand(1, 4, E))
    with pytest.raises(ValueError, match="exactly one"):
        ClusteredHeadAttention(E, H, clusters=(0,) * H, num_clusters=2)


def test_cost_rule_prices_the_probe_at_the_prefill_only():
    clusters = (0, 1, 0, 2, 1, 1, 0, 0)
    static = AttentionSpec(H, H, 64, mask=MaskSpec(causal=True), head_mixing=CHAI(clusters))
    online = AttentionSpec(H, H, 64, mask=MaskSpec(causal=True), head_mixing=CHAI(clusters, 5))
    s, o = (apply_feature_rules(plain_work(sp, 1, 128, 128, "float16"), sp) for sp in (static, online))
    assert o.qk_fraction == s.qk_fraction == 3 / 8
    assert s.cache_bytes_per_token == (3 * 64 + 8 * 64) * 2                 # representatives' K, every head's V
    assert o.extra_flops - s.extra_flops == 2 * H * 25 * 64                 # every head's 5x5 probe scores
    assert o.extra_vector_flops - s.extra_vector_flops == 5 * H * 25 + 3 * H * H * 25 + H ** 3
    assert o.extra_bytes - s.extra_bytes == 2 * H * 25 * 8 and any("host" in n for n in o.notes)
    sd, od = (apply_feature_rules(plain_work(sp, 1, 1, 129, "float16"), sp) for sp in (static, online))
    assert (od.extra_flops, od.extra_vector_flops, od.extra_bytes) == (sd.extra_flops, sd.extra_vector_flops,
                                                                       sd.extra_bytes)   # decode reuses the clusters
