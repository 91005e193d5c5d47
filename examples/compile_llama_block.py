"""Import a Llama-style block (GQA, RoPE, RMSNorm, SiLU MLP, KV cache) written in eager PyTorch,
show the attention site attncc lifted out of the spelled-out ops, then compile and check it.

    python examples/compile_llama_block.py [--target reference|cpu] [--variant eager|sdpa]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.export import Dim

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the model zoo lives in tests/models

import attncc  # noqa: E402
from attncc.frontends.torch_import import import_torch  # noqa: E402
from attncc.ir import run_graph  # noqa: E402
from tests.models import make_llama_block  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="reference", help="compile target (see attncc.targets())")
    ap.add_argument("--variant", default="eager", choices=["eager", "sdpa"], help="how the block writes attention")
    args = ap.parse_args()

    model, inputs = make_llama_block(args.variant)
    seq, past, batch = Dim("seq", max=64), Dim("past", max=64), Dim("batch")
    graph = import_torch(model, inputs, dynamic_shapes=(
        {0: batch, 1: seq}, {0: batch, 2: past}, {0: batch, 2: past}))
    print("inputs :", ", ".join(f"{v.name}: {v.type}" for v in graph.inputs))
    print("outputs:", ", ".join(str(v.type) for v in graph.outputs))
    for node in graph.attention_ops():
        print("attention:", node.name, "->", node.spec.summary())
    for d in graph.diagnostics:
        if d.get("kind") == "attention-not-lifted":
            print("not lifted:", d["node"], "-", d["reason"])

    # the imported graph keeps dynamic dims: run it at a new batch / length / cache size
    new = (torch.randn(3, 5, 32), torch.randn(3, 2, 7, 8), torch.randn(3, 2, 7, 8))
    with torch.no_grad():
        want = [t.numpy() for t in model(*new)]
    got = run_graph(graph, [t.numpy() for t in new])
    print("IR vs eager max |diff|:", max(float(np.abs(g - w).max()) for g, w in zip(got, want)))

    compiled = attncc.compile(model, inputs, target=args.target)
    out = compiled(*inputs)
    with torch.no_grad():
        ref = model(*inputs)
    print(f"{args.target}: max |diff| vs eager:",
          max(float((torch.as_tensor(np.asarray(o)) - r).abs().max()) for o, r in zip(out, ref)))


if __name__ == "__main__":
    main()
