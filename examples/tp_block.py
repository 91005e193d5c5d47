"""Tensor-parallel Llama-style block on torch.distributed: every rank compiles its shard, runs it on the full
input, checks the full output against torch eager and (with --export) writes the per-rank folders.

    torchrun --nproc-per-node 2 examples/tp_block.py [--tp 2] [--export out/tp2]

The exported set then runs without attncc (TVM's runtime, numpy and torch.distributed):

    torchrun --nproc-per-node 2 out/tp2/run_distributed.py --inputs out/tp2/inputs.npz --check out/tp2/expected.npz
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attncc  # noqa: E402
from models import LlamaStyleBlock  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tp", type=int, default=int(os.environ.get("WORLD_SIZE", "2")))
    ap.add_argument("--export", help="write the per-rank folders (and inputs.npz / expected.npz) here")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=64, heads=4, kv_heads=2, ffn=128, max_seq=64).eval()
    x = torch.randn(1, 16, 64)
    cm = attncc.compile(block, (x,), target="cpu", parallel={"tp": args.tp})  # gloo group from torchrun's env
    y = cm(x)
    with torch.no_grad():
        want = block(x)
    err = float((y - want).abs().max())
    if cm.rank == 0:
        print(f"tp={args.tp}: {len(cm.steps)} steps on rank 0 "
              f"({sum(1 for c in cm.compiled if c is not None)} compiled segments); max |attncc - torch| = {err:.2e}")
    if args.export:
        cm.export(args.export)
        if cm.rank == 0:
            np.savez(os.path.join(args.export, "inputs.npz"), **{cm.program.input_names[0]: x.numpy()})
            np.savez(os.path.join(args.export, "expected.npz"), want.numpy())
            print(f"exported {args.export}: run it with torchrun --nproc-per-node {args.tp} "
                  f"{args.export}/run_distributed.py --inputs {args.export}/inputs.npz")
    return 0 if err < 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
