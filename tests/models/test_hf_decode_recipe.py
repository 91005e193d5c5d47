"""examples/hf_decode.py, the documented recipe for compiling a Hugging Face causal LM's forward for a decode
loop: the StaticCache tensors are inputs written in place, and the greedy tokens equal model.generate's."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import hf_decode  # noqa: E402


@pytest.mark.slow
def test_hf_decode_recipe_matches_generate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    assert hf_decode.main(["--tokens", "6", "--max-len", "32"]) == 0
    out = capsys.readouterr().out
    assert "2 attention sites, 4 in-place cache writes" in out and "identical to model.generate(static cache): True" in out
