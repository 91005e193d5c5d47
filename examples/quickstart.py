"""Quickstart: compile a Llama-style attention block for the CPU, check it against PyTorch, print its cost report.

    python examples/quickstart.py
"""
from __future__ import annotations

import time

import torch

import attncc
from models import LlamaStyleBlock  # the bundled example model, examples/models.py


def main() -> None:
    torch.manual_seed(0)
    model = LlamaStyleBlock(hidden=256, heads=8, kv_heads=2, ffn=688).eval()
    x = torch.randn(2, 128, 256)

    t0 = time.perf_counter()
    cm = attncc.compile(model, (x,), target="cpu")
    print(f"compiled in {time.perf_counter() - t0:.1f} s: {cm}")
    for node in cm.graph.attention_ops():
        print(f"  attention site {node.name}: {node.spec.summary()}")

    with torch.no_grad():
        expected = model(x)
    got = cm(x)
    err = (got - expected).abs().max().item()
    print(f"max |attncc - torch| = {err:.2e}")
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), "attncc output differs from PyTorch"

    print()
    print(cm.report.to_text())


if __name__ == "__main__":
    main()
