"""README doctest: every fenced ```bash and ```python block of README.md runs, as written, and must succeed.

A block runs in a fresh temp folder (with `examples/` and `benchmarks/` of this checkout linked in, so the
README's relative paths resolve) and a temp ATTNCC_CACHE_DIR (a cold cache: what a new user gets). An HTML
comment right before a block says how to treat it:
    <!-- doctest: slow -->                 runs only under `-m slow` (compiles, benchmarks)
    <!-- doctest: skip: REASON -->         not run here (hardware this machine lacks, installs); REASON shown
    <!-- doctest: skip-lines: PREFIX -->   run the block without its lines starting with PREFIX (e.g. pip install:
                                           the suite already runs in the installed environment)
Items combine with ';' (`<!-- doctest: slow; skip-lines: pip install -->`). Unmarked blocks run in the default suite and must stay fast (a few seconds each).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
_FENCE = re.compile(r"(?:<!--\s*doctest:\s*(?P<marker>.*?)\s*-->\s*\n)?```(?P<lang>bash|python)\n(?P<body>.*?)```", re.S)


@dataclass
class Block:
    line: int
    lang: str
    body: str
    marker: str

    def items(self) -> dict[str, str]:
        """The marker's items: {"slow": "", "skip": reason, "skip-lines": prefix}; unknown items are an error."""
        out = {}
        for item in filter(None, (i.strip() for i in self.marker.split(";"))):
            key, _, value = item.partition(":")
            if key.strip() not in ("slow", "skip", "skip-lines"):
                raise ValueError(f"README line {self.line}: unknown doctest marker item {item!r}")
            out[key.strip()] = value.strip()
        return out

    @property
    def id(self) -> str:
        first = next((l for l in self.body.splitlines() if l.strip() and not l.startswith("#")), "")
        return f"L{self.line}-{self.lang}-{re.sub(r'[^A-Za-z0-9_.:-]+', '_', first)[:40]}"


def readme_blocks(text: str) -> list[Block]:
    """Every fenced bash/python block with its line number and the doctest marker before it ('' if none)."""
    return [Block(text[:m.start("lang")].count("\n") + 1, m.group("lang"), m.group("body"), m.group("marker") or "")
            for m in _FENCE.finditer(text)]


def _param(block: Block):
    items, marks = block.items(), []
    if "skip" in items:
        marks.append(pytest.mark.skip(reason=f"README line {block.line}: {items['skip']}"))
    if "slow" in items:
        marks.append(pytest.mark.slow)
    return pytest.param(block, id=block.id, marks=marks)


def _script(block: Block) -> str:
    prefix = block.items().get("skip-lines")
    if not prefix:
        return block.body
    # a skipped command chained with `&&` keeps what follows it (`pip install ... && python x.py` runs x.py)
    return "\n".join(l.split("&&", 1)[1].strip() if l.lstrip().startswith(prefix) and "&&" in l else l
                     for l in block.body.splitlines() if not l.lstrip().startswith(prefix) or "&&" in l)


def run_block(block: Block, workdir: Path, timeout: float = 1500) -> subprocess.CompletedProcess:
    """Run one block in `workdir` (examples/ and benchmarks/ linked in) with a private attncc cache."""
    for name in ("examples", "benchmarks", "constraints-ci.txt"):
        if not (workdir / name).exists():
            (workdir / name).symlink_to(ROOT / name)
    env = dict(os.environ, ATTNCC_CACHE_DIR=str(workdir / "cache"), PYTHONPATH=str(workdir / "examples"))
    if block.lang == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", _script(block)]
    else:
        cmd = [sys.executable, "-c", _script(block)]
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


BLOCKS = readme_blocks(README.read_text())


def test_readme_has_runnable_blocks():
    assert sum(1 for b in BLOCKS if "skip" not in b.items()) >= 5, "README lost its runnable commands"
    assert any(not b.items() for b in BLOCKS), "no README command runs in the default suite"


@pytest.mark.parametrize("block", [_param(b) for b in BLOCKS])
def test_readme_block_runs(block: Block, tmp_path):
    proc = run_block(block, tmp_path)
    assert proc.returncode == 0, (f"README.md line {block.line} ({block.lang}) failed with status {proc.returncode}:\n"
                                  f"{_script(block)}\n--- stdout ---\n{proc.stdout[-3000:]}\n--- stderr ---\n{proc.stderr[-3000:]}")


def test_a_failing_command_fails_the_doctest(tmp_path):
    """The harness itself: a block whose command fails (a bad model path, as a README typo would be) is caught,
    and a skip-lines marker drops only the lines it names."""
    bad = readme_blocks("```bash\nattncc --version\nattncc compile examples/nope.py:model --target cpu\n```\n")[0]
    assert run_block(bad, tmp_path).returncode != 0
    ok = readme_blocks("<!-- doctest: skip-lines: pip install -->\n```bash\npip install nothing-such\ntrue\n```\n")[0]
    assert ok.items() == {"skip-lines": "pip install"} and run_block(ok, tmp_path).returncode == 0


def test_readme_install_advice_matches_ci_and_extras():
    """One PoCL, the same in the README, .ci/run and the test extras (pip's PoCL 3.0 cannot build on Zen 5)."""
    import tomllib

    readme, ci = README.read_text(), (ROOT / ".ci" / "run").read_text()
    extras = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"])
    assert "pocl-opencl-icd" in readme and "pocl-opencl-icd" in ci
    assert "pocl-binary-distribution" not in extras and "pocl-binary-distribution" not in readme.replace(
        "not pip's pocl-binary-distribution", "")
    assert "attncc has no CUDA backend" not in readme
