"""MLA against transformers' DeepseekV3Attention (the maintained package, weights copied into attncc's module):
latent RMSNorm, the low-rank query path, interleaved RoPE and YaRN scaling, through the module, the IR
interpreter and the cpu target (fp32, rel 1e-4)."""
import pytest
import torch

pytest.importorskip("transformers", reason="transformers ships DeepseekV3Attention, the MLA oracle")
from transformers import DeepseekV3Config  # noqa: E402
from transformers.models.deepseek_v3 import modeling_deepseek_v3 as ds  # noqa: E402

from attncc.nn import MultiHeadLatentAttention  # noqa: E402

from .harness import check_variant, rand  # noqa: E402

YARN = {"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0, "original_max_position_embeddings": 16,
        "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8}


def _pair(q_lora_rank, interleave, rope):
    cfg = DeepseekV3Config(hidden_size=32, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=q_lora_rank,
                           kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=6, head_dim=4,
                           rope_interleave=interleave, attention_bias=False, max_position_embeddings=64,
                           rope_parameters=rope or {"rope_type": "default", "rope_theta": 10000.0})
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = ds.DeepseekV3Attention(cfg, layer_idx=0).eval()
    with torch.no_grad():   # non-trivial norm weights, so a missing or misplaced norm shows
        for p in hf.parameters():
            p.copy_(torch.randn(p.shape) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if p.dim() == 1 else 0.0))
    mine = MultiHeadLatentAttention(32, 4, latent_dim=16, nope_dim=8, rope_dim=4, v_head_dim=6, max_len=64,
                                    q_lora_rank=q_lora_rank, bias=False, rope_interleave=interleave,
                                    rope_scaling=rope).load_deepseek_v3(hf).eval()
    return cfg, hf, mine


def _hf_out(cfg, hf, x):
    B, S, _ = x.shape
    rot = ds.DeepseekV3RotaryEmbedding(cfg)
    pos = torch.arange(S)[None].expand(B, -1)
    mask = torch.full((S, S), float("-inf")).triu(1)[None, None].expand(B, 1, S, S)
    with torch.no_grad():
        return hf(x, position_embeddings=rot(x, pos), attention_mask=mask)[0]


CONFIGS = {"q_lora+interleave+yarn": (12, True, YARN), "q_proj+rotate_half": (None, False, None),
           "q_lora+default_rope": (12, True, None)}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_mla_module_matches_transformers_deepseek_v3(name):
    cfg, hf, mine = _pair(*CONFIGS[name])
    x = rand(2, 9, 32)
    want = _hf_out(cfg, hf, x)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), want, rtol=1e-4, atol=1e-5)
        mine.set_absorbed(True)
        torch.testing.assert_close(mine(x), want, rtol=1e-4, atol=1e-5)
    if CONFIGS[name][2]:   # YaRN reached the softmax scale (mscale_all_dim²) and the rope tables
        assert mine.spec.scale == pytest.approx(hf.scaling)


@pytest.mark.parametrize("cpu", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["reference", "cpu"])
def test_mla_interpreter_and_cpu_match_transformers(cpu):
    cfg, hf, mine = _pair(*CONFIGS["q_lora+interleave+yarn"])
    x = rand(2, 9, 32)
    check_variant(mine, (x,), {"kv_source.kind": "mla", "kv_source.latent_dim": 16}, seed_outputs=_hf_out(cfg, hf, x).numpy(),
                  cpu=cpu)


def test_mla_without_latent_norm_differs_from_deepseek_v3():
    """Pins the issue's finding: the latent RMSNorm is not optional for DeepSeek checkpoints."""
    cfg, hf, mine = _pair(None, False, None)
    x = rand(2, 9, 32)
    with torch.no_grad():
        mine.kv_norm.fill_(1.0)
        normed = mine(x)
        mine.kv_norm = None
        rel = (mine(x) - normed).norm() / normed.norm()
    assert rel > 0.05


def test_unsupported_rope_scaling_is_a_clear_error():
    with pytest.raises(ValueError, match="only rope_type 'yarn'"):
        MultiHeadLatentAttention(32, 4, 16, 8, 4, 6, rope_scaling={"rope_type": "longrope", "factor": 2.0})
