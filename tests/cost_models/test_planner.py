"""Planner: the EP decode limit of "Insights into DeepSeek-V3" with the planner's own collective model, agreement
with the rank-graph system report, KV bytes per token of full-size models on meta, and CLI errors."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import attncc
from attncc.cli import main
from attncc.cli_systems import PlanInputError, parse_nodes, parse_seconds
from attncc.cost_models import custom_system
from attncc.cost_models.planner import ep_exchange_time

transformers = pytest.importorskip("transformers")
ROOT = Path(__file__).resolve().parents[2]


def test_deepseek_ep_decode_limit_over_a_50_gbps_link():
    # arXiv 2505.09343 section 2.3.2: (1 B FP8 dispatch + 2 B BF16 combine) x 32 tokens x 9 experts x 7K hidden
    # over 50 GB/s = 120.96 us; two micro-batches per layer, 61 layers = 14.76 ms per output token
    config = transformers.DeepseekV3Config()   # DeepSeek-V3's published dims
    experts = config.num_experts_per_tok + config.n_shared_experts   # the shared expert is dispatched like a routed one
    link = custom_system("h800", 50e9)
    dispatch, combine = ep_exchange_time(32, experts, config.hidden_size, 256, link, dispatch_bytes=1, combine_bytes=2)
    assert dispatch + combine == pytest.approx(120.96e-6, rel=0.10)
    assert 2 * config.num_hidden_layers * (dispatch + combine) == pytest.approx(14.76e-3, rel=0.10)


def test_parse_nodes_and_slo():
    assert parse_nodes("1..18") == range(1, 19) and parse_nodes("4") == range(4, 5)
    assert parse_seconds("50ms") == pytest.approx(0.05) and parse_seconds("800us") == pytest.approx(8e-4)
    for bad in ("0..3", "5..2", "x"):
        with pytest.raises(PlanInputError, match="--nodes"):
            parse_nodes(bad)
    with pytest.raises(PlanInputError, match="--tpot-slo"):
        parse_seconds("fast")


MODEL_FILE = '''
import torch, transformers
def tiny():
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_attention_heads=8,
                                      num_key_value_heads=2, max_position_embeddings=64, num_hidden_layers=4)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config).eval()
    return model, (torch.zeros(2, 8, dtype=torch.long),)
'''


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_FILE)
    assert main(["plan", f"{path}:tiny", "--system", "dgx-h900", "--nodes", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown system 'dgx-h900'" in err[0]
    assert main(["plan", f"{path}:tiny", "--system", "dgx-h100", "--nodes", "0..2"]) == 2
    assert "--nodes" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_report_and_plan_on_a_tiny_model(tmp_path, capsys):
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_FILE)
    assert main(["report", f"{path}:tiny", "--system", "dgx-h100", "--tp", "2", "--phase", "decode", "--batch", "8",
                 "--seq", "256", "--json"]) == 0
    import json
    d = json.loads(capsys.readouterr().out)
    assert d["totals"]["fits"] and d["collectives"][0]["op"] == "all_reduce"
    assert main(["report", f"{path}:tiny", "--system", "dgx-h100", "--tp", "3", "--batch", "8", "--seq", "256"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tp=3" in err[0]
    assert main(["plan", f"{path}:tiny", "--system", "dgx-h100", "--nodes", "1..2", "--tpot-slo", "50ms"]) == 0
    out = capsys.readouterr().out
    assert "tok/s/dev" in out and "rejected" in out or "tok/s/dev" in out
    assert main(["plan", f"{path}:tiny", "--system", "dgx-h100", "--nodes", "1", "--tpot-slo", "1us"]) == 1
    assert "no configuration meets the SLO" in capsys.readouterr().out


@pytest.mark.slow
def test_planner_agrees_with_the_rank_graph_report():
    from attncc.cost_models.planner import estimate
    from attncc.systems_api import import_for_system, plan_system

    ns = {}
    exec(MODEL_FILE, ns)
    model, ids = ns["tiny"]()
    graph = import_for_system(model, ids, phase="decode", batch=8, seq=256)
    profile, _, _, _ = plan_system(graph, system="dgx-h100", nodes=range(1, 2), seq=256, reference_batch=8)
    for tp in (1, 2, 4):
        want = attncc.analyze(graph, system="dgx-h100", parallel={"tp": tp}, phase="decode", batch=8, seq=256)
        got = estimate(profile, "dgx-h100", tp, 1, 1, 1, 8)
        assert got.step_time_s == pytest.approx(want.step_time_s, rel=0.30), tp
        assert got.collective_s == pytest.approx(want.collective_time_s, rel=0.05), tp


@pytest.mark.slow
@pytest.mark.parametrize("name, kv_bytes", [("deepseek_v3", 70272), ("qwen25_72b", 327680), ("llama31_405b", 516096)])
def test_kv_bytes_per_token_of_full_size_models_on_meta(name, kv_bytes):
    # "Insights into DeepSeek-V3" (arXiv 2505.09343) Table 1, BF16: 70.272 / 327.680 / 516.096 KB per token
    sys.path.insert(0, str(ROOT))
    import benchmarks.systems_models as zoo

    model, ids = getattr(zoo, name)()
    assert next(model.parameters()).device.type == "meta"
    report = attncc.analyze(model, ids, hardware="h100", phase="decode", batch=2, seq=128, per_op=True)
    assert report.kv_bytes_per_token == kv_bytes
