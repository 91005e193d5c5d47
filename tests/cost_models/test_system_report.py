"""System reports: a model split over a system's devices, priced per rank from the shard pass's rank graphs."""
from __future__ import annotations

import pytest
import torch

import attncc
from attncc.cost_models import SystemSpecError, collective_time
from attncc.systems_api import SystemPricingError

transformers = pytest.importorskip("transformers")

LLAMA = dict(vocab_size=64, hidden_size=64, intermediate_size=128, num_attention_heads=8, num_key_value_heads=2,
             max_position_embeddings=64)
KEYS = ("step_time_s", "compute_time_s", "memory_time_s", "collective_time_s", "tokens_per_s", "weight_bytes_per_device",
        "kv_bytes_per_token", "kv_bytes_per_device", "fits", "collectives")


IDS = (torch.zeros(2, 8, dtype=torch.long),)


@pytest.fixture(scope="module")
def llama():
    """The imported graph (imported once; every report below prices it)."""
    from attncc.systems_api import import_for_system

    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(num_hidden_layers=4, **LLAMA)).eval()
    return import_for_system(model, IDS, phase="decode", batch=8, seq=256)


def test_tp2_report_keys_collectives_and_throughput(llama):
    r = attncc.analyze(llama, IDS, system="dgx-h100", parallel={"tp": 2, "ep": 1, "pp": 1, "dp": 1},
                       phase="decode", batch=8, seq=256)
    d = r.to_dict()
    for k in KEYS:
        assert k in d or k in d["totals"], k
    # Megatron: one all-reduce after attention and one after the MLP in every layer, of batch x hidden fp32
    layer = [c for c in d["collectives"] if c["op"] == "all_reduce"]
    assert sum(c["count"] for c in layer) == 2 * 4
    assert all(c["bytes"] == 8 * 64 * 4 and c["ranks"] == 2 and c["link"] == "nvlink4" for c in layer)
    want = collective_time("all_reduce", 8 * 64 * 4, 2, "dgx-h100").time_s
    assert d["collective_time_s"] == pytest.approx(8 * want)
    assert d["step_time_s"] == pytest.approx(d["op_time_s"] + d["collective_time_s"])   # no overlap by default
    assert d["tokens_per_s"] == pytest.approx(8 / d["step_time_s"])
    assert d["kv_bytes_per_token"] == 4 * 2 * 2 * 8 * 4          # layers x (K, V) x kv heads x head dim x fp32
    assert d["kv_bytes_per_device"] == pytest.approx(d["kv_bytes_per_token"] / 2 * 8 * 256)   # kv heads split
    assert d["fits"] is True
    assert any("overlap" in a for a in d["assumptions"])
    assert "DOES NOT FIT" not in r.to_text() and "all_reduce" in r.to_text()


def test_html_timeline(llama, tmp_path):
    r = attncc.analyze(llama, system="dgx-h100", parallel={"tp": 2, "pp": 2}, phase="decode", batch=8, seq=256)
    text = open(r.to_html(str(tmp_path / "r.html"))).read()
    assert 'alt="per-rank timeline" src="data:image/png;base64,' in text and "all_reduce" in text


def test_pipeline_and_overlap(llama):
    base = attncc.analyze(llama, IDS, system="dgx-h100", parallel={"tp": 2}, phase="decode", batch=8, seq=256)
    pp = attncc.analyze(llama, IDS, system="dgx-h100", parallel={"tp": 2, "pp": 2}, phase="decode", batch=8, seq=256)
    assert pp.stage_time_s < base.stage_time_s                       # half the layers per stage
    assert pp.send_time_s > 0 and pp.parallel.devices == 4
    over = attncc.analyze(llama, IDS, system="dgx-h100", parallel={"tp": 2}, phase="decode", batch=8, seq=256,
                          overlap="full")
    assert over.step_time_s == pytest.approx(max(over.op_time_s, over.collective_time_s))


def test_bad_parallel_sizes_and_system_are_one_line_errors(llama):
    with pytest.raises(SystemPricingError, match="batch 6 does not divide over ep=4"):
        attncc.analyze(llama, IDS, system="dgx-h100", parallel={"ep": 4}, phase="decode", batch=6, seq=256)
    with pytest.raises(SystemPricingError, match="pp=3 does not divide the model's 4 repeated layers; legal pipeline sizes: 1, 2, 4"):
        attncc.analyze(llama, IDS, system="dgx-h100", parallel={"pp": 3}, phase="decode", batch=8, seq=256)
    with pytest.raises(SystemPricingError, match="tp=3"):
        attncc.analyze(llama, IDS, system="dgx-h100", parallel={"tp": 3}, phase="decode", batch=8, seq=256)
    with pytest.raises(SystemSpecError, match="unknown system 'dgx-h900'"):
        attncc.analyze(llama, IDS, system="dgx-h900", parallel={"tp": 2}, phase="decode", batch=8, seq=256)
    with pytest.raises(ValueError, match="unknown key"):
        attncc.analyze(llama, IDS, system="dgx-h100", parallel={"cp": 2}, phase="decode", batch=8, seq=256)


def test_fp8_weights_and_int8_kv(llama):
    kw = dict(system="dgx-h100", parallel={"tp": 2}, phase="decode", batch=8, seq=256)
    bf16 = attncc.analyze(llama, IDS, **kw)
    low = attncc.analyze(llama, IDS, weight_dtype="fp8", kv_dtype="int8", **kw)
    assert low.kv_bytes_per_token == bf16.kv_bytes_per_token / 2
    assert low.weight_bytes_per_device < bf16.weight_bytes_per_device
    assert low.memory_time_s < bf16.memory_time_s
    with pytest.raises(SystemPricingError, match="kv_dtype 'int4' is not supported"):
        attncc.analyze(llama, IDS, kv_dtype="int4", **kw)


# DeepSeek-V3's attention dims (128 heads, latent 512 + rope 64) with a tiny rest: the intensity per KV byte
# depends on those alone
MLA_DIMS = dict(vocab_size=64, hidden_size=256, intermediate_size=64, moe_intermediate_size=16, num_attention_heads=128,
                num_key_value_heads=128, n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=1,
                topk_group=1, first_k_dense_replace=1, q_lora_rank=64, kv_lora_rank=512, qk_rope_head_dim=64,
                qk_nope_head_dim=128, v_head_dim=128, max_position_embeddings=64, rope_interleave=True)


@pytest.mark.slow
def test_sharded_mla_decode_intensity_stays_over_100x_mha():
    from attncc.systems_api import import_for_system

    with torch.device("meta"):
        config = transformers.DeepseekV3Config(num_hidden_layers=2, **MLA_DIMS)
        model = transformers.DeepseekV3ForCausalLM(config).to(torch.bfloat16).eval()
    # static sizes: this export lifts MLA (the dynamic one keeps a mask tensor lift-mla does not take)
    graph = import_for_system(model, IDS, phase="decode", batch=8, seq=4096, dynamic=False)

    def attention_row(parallel):
        r = attncc.analyze(graph, system="dgx-h100", parallel=parallel, phase="decode", batch=8, seq=4096)
        att = [row for row in r.rank_report.rows if row.kind.startswith("Attention")]
        assert att and att[0].variant == "mla"
        return att[0].cost

    # DeepSeek's deployment: attention data-parallel over the ep ranks, all 128 heads on each rank, BF16 latent.
    # MHA reads each K/V byte for one head: 1 FLOP per byte (tests/cost_models/test_formulas.py)
    dp = attention_row({"ep": 2})
    assert dp.intensity_per_kv_byte == pytest.approx(2 * 128 * (2 * 512 + 64) / (2 * (512 + 64)), rel=0.02)
    assert dp.intensity_per_kv_byte / 1.0 > 100
    tp = attention_row({"tp": 2})           # 64 of 128 heads per rank over all 8 requests: the same core work as dp
    assert tp.details["core_flops"] == pytest.approx(dp.details["core_flops"], rel=1e-6)
    assert tp.intensity_per_kv_byte == pytest.approx(2 * 64 * (2 * 512 + 64) / (2 * (512 + 64)), rel=0.02)   # 121
    assert tp.intensity_per_kv_byte / 1.0 > 100
