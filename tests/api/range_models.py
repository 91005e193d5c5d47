"""One small RoPE block compiled for cpu with a declared sequence range, shared by the range/export-check tests
(compiled once per test process; exports copied per test)."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile

import torch

import attncc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
from models import LlamaStyleBlock  # noqa: E402

SEQ_MIN, SEQ_MAX, HIDDEN = 4, 64, 64   # the RoPE tables hold SEQ_MAX rows: past them a kernel reads outside


@functools.lru_cache(maxsize=1)
def rope_block():
    """(eager torch block, compiled cpu model with seq in [SEQ_MIN, SEQ_MAX], its export folder)."""
    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=HIDDEN, heads=4, kv_heads=2, ffn=96, max_seq=SEQ_MAX).eval()
    seq = torch.export.Dim("seq", min=SEQ_MIN, max=SEQ_MAX)
    cm = attncc.compile(block, (torch.randn(1, 8, HIDDEN),), dynamic_shapes={"x": {1: seq}}, target="cpu")
    cm(torch.randn(1, 8, HIDDEN))
    tmp = tempfile.mkdtemp(prefix="attncc-rope-")
    atexit.register(shutil.rmtree, tmp, True)
    folder = os.path.join(tmp, "export")
    cm.export(folder)
    return block, cm, folder


def copy_export(tmp_path) -> str:
    """A private copy of the block's export folder (tests corrupt it)."""
    dst = str(tmp_path / "export")
    shutil.copytree(rope_block()[2], dst)
    return dst
