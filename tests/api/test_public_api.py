"""The public surface: import_model dispatch and errors, compile on the reference target, CompiledModel I/O, CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import attncc
from attncc import ir
from attncc.cli import main as cli_main


def attention_graph():
    g = ir.Graph("tiny")
    q = g.add_input("q", "float32", ("batch", 2, "seq", 8))
    k = g.add_input("k", "float32", ("batch", 1, "seq", 8))
    v = g.add_input("v", "float32", ("batch", 1, "seq", 8))
    spec = ir.AttentionSpec(2, 1, 8, mask=ir.MaskSpec(causal=True))
    g.set_outputs([g.add1(ir.Attention(spec=spec), [q, k, v], name="attn")])
    return g


def test_import_model_rejects_unknown_objects_with_guidance():
    with pytest.raises(TypeError, match="cannot import a dict: pass a torch.nn.Module"):
        attncc.import_model({})
    with pytest.raises(TypeError, match="only .onnx files"):
        attncc.import_model("model.pt")


def test_compile_reference_runs_numpy_and_torch():
    cm = attncc.compile(attention_graph(), target="reference", passes="canonicalize,dce")
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 2, 5, 8)).astype(np.float32)
    k = rng.standard_normal((2, 1, 5, 8)).astype(np.float32)
    out = cm(q, k, k)
    assert isinstance(out, np.ndarray) and out.shape == (2, 2, 5, 8)
    tout = cm(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(k))
    assert isinstance(tout, torch.Tensor)
    ref = torch.nn.functional.scaled_dot_product_attention(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(k),
                                                           is_causal=True, enable_gqa=True)
    torch.testing.assert_close(tout, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="takes 3 inputs"):
        cm(q)


def test_compiled_model_exposes_attention_ops_and_exports(tmp_path):
    cm = attncc.compile(attention_graph(), target="reference", passes="dce")
    cm(*[np.ones((1, h, 4, 8), np.float32) for h in (2, 1, 1)])  # binds batch=1, seq=4 for the report
    assert cm.dims == {"batch": 1, "seq": 4}
    assert cm.report.rows
    assert [n.spec.variant for n in cm.graph.attention_ops()] == ["mqa"]
    files = cm.export(str(tmp_path / "out"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["target"] == "reference" and "graph.json" in manifest["files"] and "report.json" in manifest["files"]
    g = ir.graph_from_json((tmp_path / "out" / "graph.json").read_text())
    assert ir.print_ir(g) == ir.print_ir(cm.graph)
    assert len(files) >= 2


def test_unknown_and_planned_targets_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="unknown target 'tpu'"):
        attncc.compile(attention_graph(), target="tpu")
    from attncc.backends import TARGETS, TargetInfo

    # every registered target may be available by now: register a planned one for the check
    monkeypatch.setitem(TARGETS, "qpu", TargetInfo("qpu", "attncc.backends.qpu:QpuBackend", "a future target", "planned"))
    with pytest.raises(ValueError, match="'qpu'.*planned"):
        attncc.compile(attention_graph(), target="qpu")


def test_targets_lists_cpu_and_reference():
    names = {t["name"]: t["status"] for t in attncc.targets()}
    assert names["cpu"] == "available" and names["reference"] == "available"


def test_cli_help_and_targets(capsys):
    assert cli_main(["targets"]) == 0
    assert "reference" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    assert "compile" in capsys.readouterr().out


def test_cli_print_pipeline(capsys):
    assert cli_main(["compile", "--print-pipeline", "--target", "reference"]) == 0
    assert "canonicalize" in capsys.readouterr().out


def test_cli_bad_pipeline_is_a_clean_error(capsys, tmp_path):
    assert cli_main(["compile", "examples/models.py:llama_block", "--passes", "canonicalize{x=1}", "--target", "reference"]) == 2
    assert "pass 'canonicalize' has no option 'x'" in capsys.readouterr().err


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "attncc", "targets"], capture_output=True, text=True, check=True)
    assert "cpu" in out.stdout


def test_analyze_torch_model_at_requested_decode_shapes():
    """phase/seq/batch re-export the model with dynamic dims, so every op (not only attention) is priced at them."""
    import sys
    sys.path.insert(0, "examples")
    from models import LlamaStyleBlock

    torch.manual_seed(0)
    model = LlamaStyleBlock(hidden=64, heads=4, kv_heads=2, ffn=128, max_seq=256).eval()
    report = attncc.analyze(model, (torch.randn(1, 16, 64),), hardware="h100-sxm", phase="decode", seq=4096, batch=8)
    assert report.dims["batch"] == 8 and report.dims["seq"] == 1 and not report.notes
    qkv = [r for r in report.rows if r.kind == "Linear"][0]
    assert qkv.cost.flops == 2 * 8 * 64 * (64 + 2 * 32)  # 8 tokens through the packed QKV projection
    attn = [r for r in report.rows if r.kind == "Attention"][0]
    assert attn.cost.kv_read_bytes == 8 * 2 * 2 * 4096 * 16 * 4  # batch * kv heads * (K+V) * past * head dim * fp32


@pytest.mark.slow   # default-suite budget: tests/cost_models/test_mobile_compare.py drives the same CLI path
def test_cli_report_compares_devices_side_by_side(capsys):
    assert cli_main(["report", "examples/models.py:llama_block", "--hardware", "h100-sxm,mobile-cpu",
                     "--phase", "decode", "--seq", "1024", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "speedup vs first" in out and "h100-sxm" in out and "mobile-cpu" in out


@pytest.mark.parametrize("target", ["reference", "cpu"])
def test_export_then_load_runs_the_same(tmp_path, target):
    cm = attncc.compile(attention_graph(), target=target, passes="dce")
    rng = np.random.default_rng(1)
    args = [rng.standard_normal((2, h, 6, 8)).astype(np.float32) for h in (2, 1, 1)]
    expected = cm(*args)
    cm.export(str(tmp_path / "pkg"))
    loaded = attncc.load(str(tmp_path / "pkg"))
    assert loaded.target == target and ir.print_ir(loaded.graph) == ir.print_ir(cm.graph)
    np.testing.assert_allclose(loaded(*args), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        attncc.load(str(tmp_path))


@pytest.mark.parametrize("pass_name", ["tile", "mla-absorb"])
def test_target_pass_option_errors_name_their_own_pass(pass_name):
    from attncc.ir.passes import PipelineError, run_pipeline

    with pytest.raises(PipelineError, match=f"pass '{pass_name}': option 'dims'"):
        run_pipeline(attention_graph(), f"{pass_name}{{dims=seq}}")
    with pytest.raises(PipelineError, match=f"pass '{pass_name}': option 'target'"):
        run_pipeline(attention_graph(), f"{pass_name}{{target=tpu9}}")
