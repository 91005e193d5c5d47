"""Linear attention: kernelized (normalized) form and the ONNX LinearAttention gated / delta recurrences."""
import pytest
import torch

from attncc.ir.ops import AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import LinearAttn
from attncc.ir.ops.attention_spec import SpecError
from attncc.nn import LinearAttention, attention

from .harness import check_variant, rand


@pytest.mark.parametrize("rule,fmap,normalize,kv", [("linear", "elu_plus_one", True, 4), ("gated", "identity", False, 2),
                                                     ("delta", "identity", False, 4), ("gated_delta", "identity", False, 2)])
@pytest.mark.parametrize("batch,seq", [(2, 7), (3, 12)])
def test_linear_attention(batch, seq, rule, fmap, normalize, kv):
    torch.manual_seed(0)
    m = LinearAttention(32, 4, num_kv_heads=kv, update_rule=rule, feature_map=fmap, normalize=normalize)
    check_variant(m, (rand(batch, seq, 32),), {"kv_source": LinearAttn(rule, fmap, normalize), "num_kv_heads": kv},
                  cpu=batch == 2 and rule in ("linear", "gated_delta"))


def test_gated_delta_matches_onnx_recurrence_by_hand():
    """o_t = scale qᵀS_t with S_t = e^g S + β k (v - e^g Sᵀk)ᵀ, written out for two steps."""
    q, k, v = rand(1, 1, 2, 3), rand(1, 1, 2, 3, seed=1), rand(1, 1, 2, 2, seed=2)
    g, b = -rand(1, 1, 2, seed=3).abs(), torch.sigmoid(rand(1, 1, 2, seed=4))
    spec = AttentionSpec(1, 1, 3, v_head_dim=2, scale=0.5, mask=MaskSpec(causal=True), kv_source=LinearAttn("gated_delta"))
    out = attention(spec, query=q, key=k, value=v, decay=g, beta=b)
    S = torch.zeros(3, 2)
    for t in range(2):
        kt, vt = k[0, 0, t], v[0, 0, t]
        Sd = g[0, 0, t].exp() * S
        S = Sd + b[0, 0, t] * torch.outer(kt, vt - Sd.T @ kt)
        torch.testing.assert_close(out[0, 0, t], 0.5 * q[0, 0, t] @ S)


def test_linear_configuration_errors():
    with pytest.raises(SpecError, match="update_rule"):
        LinearAttn("magic")
    with pytest.raises(SpecError, match="normalize needs"):
        LinearAttn("delta", normalize=True)
    with pytest.raises(SpecError, match="set mask.causal"):
        AttentionSpec(4, 4, 8, kv_source=LinearAttn("gated"))
    assert LinearAttn("gated_delta").extra_inputs() == ("decay", "beta")
