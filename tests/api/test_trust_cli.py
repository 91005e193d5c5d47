"""The command line on bad input: one clear line and a non-zero exit, never a bare traceback (issue #15)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import attncc
import attncc.calibration
import attncc.cost_models
from attncc.cli import check_dump_dir, main as cli_main

from .trust_models import relu_onnx

REPO = Path(__file__).resolve().parents[2]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


# ---- item 3: requested dims that bind nothing; --dims NAME=VALUE -------------------------------------
def test_report_says_when_batch_and_seq_bind_no_dim_of_a_static_model(tmp_path, capsys):
    path = relu_onnx(tmp_path / "static.onnx")
    assert cli_main(["report", path, "--batch", "16", "--seq", "8192"]) == 0
    out, err = capsys.readouterr()
    header = out.splitlines()[0]
    assert "batch=16" not in header and "static shapes" in header
    assert "note: requested batch=16, seq=8192 bound nothing" in out and "every dim is static" in out
    assert "warning" in err and "batch=16, seq=8192 bound nothing" in err


def test_report_dims_binds_any_named_dynamic_dim(tmp_path, capsys):
    path = relu_onnx(tmp_path / "dyn.onnx", shape=("batch_size", "sequence_length", 4))
    assert cli_main(["report", path, "--dims", "batch_size=3", "--dims", "sequence_length=100", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["dims"] == {"batch_size": 3, "sequence_length": 100} and not err
    assert report["rows"][0]["vector_flops"] == 3 * 100 * 4


def test_report_unknown_dim_name_lists_the_models_dynamic_dims(tmp_path, capsys):
    path = relu_onnx(tmp_path / "dyn.onnx", shape=("batch_size", "sequence_length", 4))
    assert cli_main(["report", path, "--dims", "seq=100"]) == 2
    assert "has no dynamic dim 'seq'; its dynamic dims: batch_size, sequence_length" in error_line(capsys)


def test_report_batch_shorthand_on_a_model_without_a_batch_dim_is_noted(tmp_path, capsys):
    path = relu_onnx(tmp_path / "dyn.onnx", shape=("batch_size", 4))
    assert cli_main(["report", path, "--batch", "8", "--dims", "batch_size=2"]) == 0
    out, err = capsys.readouterr()
    assert "batch_size=2" in out.splitlines()[0] and "batch=8" not in out.splitlines()[0]
    assert "no dim named batch (its dynamic dims: batch_size)" in err and "--dims NAME=N" in err


# ---- item 4: --dump-ir into attncc's own sources -----------------------------------------------------
def test_dump_ir_refuses_attncc_source_folders(tmp_path, capsys):
    ir_src = os.path.dirname(attncc.ir.__file__)
    before = set(os.listdir(ir_src))
    path = relu_onnx(tmp_path / "m.onnx")
    assert cli_main(["compile", path, "--target", "reference", "--dump-ir", ir_src]) == 2
    assert "refusing to write IR dumps into attncc's own source folder" in error_line(capsys)
    assert set(os.listdir(ir_src)) == before
    with pytest.raises(ValueError, match="own source folder"):
        check_dump_dir(os.path.join(os.path.dirname(attncc.__file__), "passes"))
    check_dump_dir(str(tmp_path / "out" / "ir"))  # a neutral folder is fine
    assert cli_main(["compile", path, "--target", "reference", "--dump-ir", str(tmp_path / "out" / "ir")]) == 0
    assert (tmp_path / "out" / "ir" / "00-input.ir").exists()


def test_readme_dump_ir_example_uses_a_neutral_folder():
    commands = [ln for ln in (REPO / "README.md").read_text().splitlines() if ln.startswith("attncc compile")]
    assert commands and not any("--dump-ir ir/" in ln for ln in commands)
    assert any("--dump-ir out/ir" in ln for ln in commands)


# ---- item 5: calibrate on a busy machine, where the spec went, reports name their spec ----------------
def test_calibrate_refuses_a_busy_machine_without_force(monkeypatch, capsys):
    monkeypatch.setattr(attncc.calibration, "load_average", lambda: 4.0)
    monkeypatch.setattr(attncc.calibration, "usable_cores", lambda: 2)
    monkeypatch.setattr(attncc.cost_models, "calibrate_host", lambda **kw: pytest.fail("measured on a busy machine"))
    assert cli_main(["calibrate", "--dry-run"]) == 2
    line = error_line(capsys)
    assert "machine is busy: load average 4.00 on 2 core(s) (2.00 per core)" in line and "--force" in line


def _fake_calibration(monkeypatch, tmp_path):
    from attncc.cost_models.hardware import SPEC_DIR, spec_from_dict

    def fake_calibrate_host(save=True, kernels=None, fp32_probes=None, quick=False, dtype_probes=None):
        d = json.loads((SPEC_DIR / "host-cpu.json").read_text())
        d["calibrated"] = "2026-01-02 03:04"
        target = tmp_path / "cache" / "host-cpu.json"
        if save:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(d))
        return spec_from_dict(d, str(target))

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(attncc.calibration, "load_average", lambda: 4.0)
    monkeypatch.setattr(attncc.calibration, "usable_cores", lambda: 2)
    monkeypatch.setattr(attncc.calibration, "measure_matmul_peak", lambda n: {"name": "fake", "flops": 1e9})
    monkeypatch.setattr(attncc.calibration, "measure_torch_gemm", lambda dtype, n: {"flops": 1e9, "source": "fake"})
    monkeypatch.setattr(attncc.cost_models, "calibrate_host", fake_calibrate_host)
    return tmp_path / "cache" / "host-cpu.json"


def test_calibrate_with_force_says_where_it_saved_and_reports_name_the_spec(monkeypatch, tmp_path, capsys):
    saved = _fake_calibration(monkeypatch, tmp_path)
    model = relu_onnx(tmp_path / "m.onnx")
    assert cli_main(["report", model]) == 0
    assert "hardware: host-cpu (default spec; " in capsys.readouterr().out.splitlines()[0]
    assert cli_main(["calibrate", "--force"]) == 0
    out, err = capsys.readouterr()
    assert f"saved the calibrated host-cpu spec to {saved}" in out and saved.exists() and not err
    assert cli_main(["report", model]) == 0
    assert f"hardware: host-cpu (calibrated, {saved}, 2026-01-02 03:04; " in capsys.readouterr().out.splitlines()[0]
    assert attncc.analyze(model).to_dict()["hardware_source"] == f"calibrated, {saved}, 2026-01-02 03:04"


def test_calibrate_dry_run_says_nothing_was_saved(monkeypatch, tmp_path, capsys):
    saved = _fake_calibration(monkeypatch, tmp_path)
    assert cli_main(["calibrate", "--force", "--dry-run"]) == 0
    assert f"dry run: spec not saved (it would go to {saved}" in capsys.readouterr().out and not saved.exists()


def test_calibrate_progress_goes_to_stderr_only_with_verbose(monkeypatch, tmp_path, capsys):
    _fake_calibration(monkeypatch, tmp_path)
    assert cli_main(["calibrate", "--force", "--dry-run"]) == 0
    assert capsys.readouterr().err == ""  # not a TTY, no --verbose: tests' output stays clean
    assert cli_main(["calibrate", "--force", "--dry-run", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "attncc: load average 4.00" in err and "busy, measuring anyway (--force)" in err
    assert "attncc: measuring matmul peaks" in err


# ---- item 6: one line per expected error, --verbose for the traceback, --version, progress ------------
@pytest.mark.parametrize("content, says", [
    (b"\x8f\x01random bytes \x00\xff" * 40, "is not a valid ONNX model: DecodeError"),
    (b"", "is not an ONNX model: it holds no graph"),
])
def test_corrupt_onnx_is_one_line_naming_the_file(tmp_path, capsys, content, says):
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    assert cli_main(["report", str(path)]) == 2
    line = error_line(capsys)
    assert line.startswith("attncc report: error: ") and str(path) in line and says in line


def test_verbose_prints_the_traceback(tmp_path, capsys):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\xff" * 64)
    assert cli_main(["--verbose", "report", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "DecodeError" in err and err.strip().splitlines()[-1].startswith("attncc report: error:")
    assert cli_main(["report", str(path), "-v"]) == 2  # also after the command
    assert "Traceback" in capsys.readouterr().err


def test_export_into_an_unwritable_folder_is_one_line(tmp_path, capsys):
    model = relu_onnx(tmp_path / "m.onnx")
    (tmp_path / "a_file").write_text("not a folder")
    assert cli_main(["compile", model, "--target", "reference", "--export", str(tmp_path / "a_file" / "out")]) == 2
    line = error_line(capsys)
    assert "cannot export to" in line and "a_file" in line


def test_unknown_hardware_and_missing_file_are_one_line(tmp_path, capsys):
    model = relu_onnx(tmp_path / "m.onnx")
    assert cli_main(["report", model, "--hardware", "tpu-v9"]) == 2
    assert "unknown hardware 'tpu-v9'" in error_line(capsys)


def test_version_names_attncc_and_tvm(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"attncc {attncc.__version__} (TVM ") and "0.27" in out


def test_compile_progress_only_with_verbose(tmp_path, capsys):
    model = relu_onnx(tmp_path / "m.onnx")
    assert cli_main(["compile", model, "--target", "reference"]) == 0
    assert capsys.readouterr().err == ""
    assert cli_main(["compile", model, "--target", "reference", "--verbose"]) == 0
    err = capsys.readouterr().err
    assert "attncc: importing" in err and "attncc: lowering" in err and "attncc: compiled in" in err


# ---- item 9: unknown pass names ----------------------------------------------------------------------
def test_unknown_pass_in_a_user_pipeline_lists_registered_passes(tmp_path, capsys):
    model = relu_onnx(tmp_path / "m.onnx")
    assert cli_main(["compile", model, "--target", "reference", "--passes", "canonicalize,no-such-pass"]) == 2
    line = error_line(capsys)
    assert "unknown pass 'no-such-pass'; registered passes:" in line and "fuse-attention" in line
