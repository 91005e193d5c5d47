"""Issue 22, item 4: every failure of the `attncc` command is one line `attncc COMMAND: error: ...` on stderr
with exit status 2 (torch.export failures and missing files included); `--verbose` adds the traceback."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from attncc.cli import main as cli_main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models.py"

# data-dependent control flow: torch.export cannot trace it (and prints the partial graph straight to stderr)
UNEXPORTABLE = textwrap.dedent("""
    import torch
    class Branchy(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x + 1
            return x - 1
    def branchy():
        return Branchy(), (torch.ones(2, 4),)
    def small():
        return torch.nn.Linear(4, 4), (torch.ones(2, 4),)
""")


@pytest.fixture
def models(tmp_path) -> Path:
    (tmp_path / "user_models.py").write_text(UNEXPORTABLE)
    (tmp_path / "corrupt.onnx").write_bytes(b"\x08\x07\x12\x04junk" + os.urandom(64))
    return tmp_path


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert lines[0].startswith(f"attncc {command}: error: "), lines[0]
    return lines[0]


BAD_INPUTS = {   # id: (argv with {d} = the fixture folder, command, what the line must say)
    "missing model file": (["compile", "{d}/nosuch.py:f"], "compile",
                           "cannot read model file {d}/nosuch.py: No such file or directory"),
    "missing onnx file": (["report", "{d}/nosuch.onnx"], "report",
                          "cannot read ONNX file {d}/nosuch.onnx: No such file or directory"),
    "missing function": (["compile", "{d}/user_models.py:nope", "--target", "reference"], "compile",
                         "has no function 'nope'"),
    "bad --dynamic spec": (["compile", "{d}/user_models.py:small", "--dynamic", "x:1=seq:2"], "compile",
                           "--dynamic 'x:1=seq:2': expected INPUT:AXIS=NAME or INPUT:AXIS=NAME:MIN:MAX"),
    "export fails": (["compile", "{d}/user_models.py:branchy", "--target", "reference"], "compile",
                     "torch.export could not export the model: GuardOnDataDependentSymNode"),
    "bad target": (["compile", "{d}/user_models.py:small", "--target", "tpu"], "compile", "unknown target 'tpu'"),
    "bad hardware": (["report", "{d}/user_models.py:small", "--hardware", "tpu-v9"], "report",
                     "unknown hardware 'tpu-v9'"),
    "corrupt onnx": (["compile", "{d}/corrupt.onnx"], "compile", "corrupt.onnx is not a valid ONNX model"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_each_bad_input_is_one_line_and_exit_status_2(case, models, capsys):
    argv, command, says = BAD_INPUTS[case]
    assert cli_main([a.format(d=models) for a in argv]) == 2
    assert says.format(d=models) in one_error_line(capsys, command)


def test_export_failure_names_the_users_line(models, capsys):
    assert cli_main(["compile", f"{models}/user_models.py:branchy", "--target", "reference"]) == 2
    assert f'"{models}/user_models.py", line 5, in forward: if x.sum() > 0:' in one_error_line(capsys, "compile")


def test_declared_range_torch_export_rejects_gives_torchs_suggested_fix(capsys):
    """README's `--dynamic x:1=seq:2:4096` on the example block (its RoPE table holds 2048 rows)."""
    assert cli_main(["compile", f"{EXAMPLES}:llama_block", "--target", "reference", "--dynamic", "x:1=seq:2:4096"]) == 2
    line = one_error_line(capsys, "compile")
    assert "Constraints violated (seq)" in line and "torch suggests: seq = Dim('seq', max=2048)" in line


def test_unknown_option_is_one_line_naming_the_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main(["compile", "--no-such-option"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-option" in one_error_line(capsys, "compile")


def test_verbose_adds_the_traceback(models, capsys):
    assert cli_main(["compile", f"{models}/user_models.py:branchy", "--target", "reference", "--verbose"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("attncc compile: error: torch.export")


def test_the_installed_command_in_a_subprocess(models):
    """The real process: stderr (torch prints the partial graph straight to it when export fails, and logs
    warnings while tracing) is one line, exit status 2."""
    done = subprocess.run([sys.executable, "-m", "attncc", "compile", f"{models}/user_models.py:branchy",
                           "--target", "reference"], capture_output=True, text=True, timeout=300, cwd=str(models))
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attncc compile: error: torch.export could not export"), \
        done.stderr[-3000:]
