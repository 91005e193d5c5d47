"""FX nodes' source locations: stack traces with a code line per frame, without one (code typed at a prompt or
piped into `python -`), or none at all; `attncc.compile` works from an interactive interpreter."""
from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import pytest

from attncc.frontends.torch_converters.context import innermost_frame

MODEL = """import torch, attncc
class M(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) + 1

cm = attncc.compile(M(), (torch.ones(2, 4),), target="reference")
print("COMPILED", float(cm(torch.ones(2, 4)).sum()), cm.graph.nodes[0].source)
"""


@pytest.mark.parametrize("trace, want", [
    ('File "m.py", line 3, in forward\n    return torch.relu(x)\n', 'File "m.py", line 3, in forward'),
    ('File "a.py", line 9, in f\n    g()\nFile "m.py", line 3, in forward\n    return x\n', 'File "m.py", line 3, in forward'),
    ('File "<stdin>", line 4, in forward', 'File "<stdin>", line 4, in forward'),     # no code line: a prompt
    ('File "<stdin>", line 4, in forward\n', 'File "<stdin>", line 4, in forward'),
    ("", ""), (None, ""), ("\n\n", ""),
])
def test_innermost_frame_reads_any_number_of_stack_lines(trace, want):
    assert innermost_frame(trace) == want


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def test_compile_from_code_piped_into_python_stdin():
    done = subprocess.run([sys.executable, "-"], input=MODEL, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "COMPILED 16.0" in done.stdout and '"<stdin>", line 4, in forward' in done.stdout


def test_compile_at_an_interactive_prompt_in_a_pty():
    """A real REPL (`python -i` on a terminal): the source typed line by line, as a user would."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-i", "-q"], stdin=follower, stdout=follower, stderr=follower,
                            env={**_env(), "TERM": "dumb", "PYTHON_BASIC_REPL": "1"}, close_fds=True)
    os.close(follower)
    out = b""
    try:
        for line in (MODEL + "\nexit()\n").splitlines():
            os.write(leader, line.encode() + b"\n")
            time.sleep(0.05)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    out += os.read(leader, 65536)
                except OSError:   # the child closed the terminal
                    break
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = out.decode(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    assert "COMPILED 16.0" in text, text[-3000:]
