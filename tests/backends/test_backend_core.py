"""The shared backend core: target-neutral, plugins supply the target-specific parts."""
from __future__ import annotations

import os
import pathlib
import re

import attncc.backends as backends

ROOT = pathlib.Path(__file__).resolve().parents[2] / "backends"


def test_core_imports_no_target_plugin():
    for path in (ROOT / "core").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*from \.\.(cpu|cuda|mobile|optical)\b", text, re.M), path.name
        assert "torch" not in re.findall(r"^\s*(?:import|from)\s+(\w+)", text, re.M) or path.name == "runner.py", \
            f"{path.name} imports torch"


def test_cpu_capabilities_come_from_this_machine():
    caps = backends.target_capabilities("cpu")
    size = pathlib.Path("/sys/devices/system/cpu/cpu0/cache/index0/size")
    level = pathlib.Path("/sys/devices/system/cpu/cpu0/cache/index0/level")
    if size.exists() and level.exists() and level.read_text().strip() == "1":
        text = size.read_text().strip().upper()
        assert caps.on_chip_bytes == int(text.rstrip("KMG")) * {"K": 1024, "M": 1 << 20}.get(text[-1], 1)
    assert caps.tiles.accepts(64, 128) and not caps.tiles.accepts(4, 1)


def test_capabilities_lookup_does_not_import_tvm():
    import subprocess
    import sys

    code = ("import sys, attncc.backends as b; b.target_capabilities('cpu'); "
            "sys.exit(1 if 'tvm' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ}).returncode == 0
