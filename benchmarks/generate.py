"""Greedy generation with a KV cache: attncc (compiled once, shape-generic) vs torch eager, same process.

    python benchmarks/generate.py [--tokens 128] [--prompts 16,64]

Per prompt length: builds after the first decode step (must be 0), median per-token ms of attncc and of
torch eager on the same 2-layer TinyLlama (examples/models.py), the ratio, and whether the tokens agree.
torch runs first for each prompt (TVM's workers spin briefly after a call and would slow torch).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from generate import builds, compile_generator, generate  # noqa: E402
from models import TinyLlamaPrefill, tiny_llama  # noqa: E402


def median_ms(times: list[float]) -> float:
    return sorted(times)[len(times) // 2] * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--prompts", default="16,64")
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    lm = tiny_llama()
    lengths = [int(x) for x in args.prompts.split(",")]
    first = torch.randint(0, 512, (1, lengths[0]), generator=torch.Generator().manual_seed(0))
    prefill, decode = compile_generator(lm, first)
    generate(prefill, decode, first, 2)   # the one build of each compiled model
    built = builds(prefill) + builds(decode)
    for n in lengths:
        prompt = torch.randint(0, 512, (1, n), generator=torch.Generator().manual_seed(n))
        with torch.no_grad():
            ref, ref_t = generate(TinyLlamaPrefill(lm), lm, prompt, args.tokens)
        mine, mine_t = generate(prefill, decode, prompt, args.tokens)
        extra = builds(prefill) + builds(decode) - built
        a, t = median_ms(mine_t), median_ms(ref_t)
        print(f"prompt {n:4d}, {args.tokens} tokens: builds after the first decode step {extra}, "
              f"per token attncc {a:.2f} ms, torch eager {t:.2f} ms, ratio torch/attncc {t / a:.2f}, "
              f"tokens identical {mine == ref}")


if __name__ == "__main__":
    main()
