"""Greedy generation with a KV cache, compiled once: a 2-layer Llama-style decoder (GQA, RoPE).

The prompt pass is compiled with a dynamic sequence length and the decode step with a dynamic cache
length, so each builds once (shape-generic kernels) and every later length reuses the build. The
script checks the tokens against torch eager and prints per-token latency of both, side by side.

    python examples/generate.py [--tokens 128] [--prompt 16] [--tp 2]

With --tp N the same runs tensor-parallel on N local processes (torch.distributed, gloo; attncc.distributed.launch):
each rank compiles its shard, every rank gets the full logits and cache back.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attncc  # noqa: E402
from models import TinyLlamaPrefill, tiny_llama  # noqa: E402


def compile_generator(lm, prompt: torch.Tensor, parallel: dict | None = None):
    """(prefill, decode) compiled models for `lm`: dynamic prompt length and dynamic cache length
    (`parallel`: this rank's shards inside a torch.distributed job)."""
    seq = torch.export.Dim("seq", min=2, max=4096)
    prefill = attncc.compile(TinyLlamaPrefill(lm), (prompt,), dynamic_shapes={"ids": {1: seq}}, parallel=parallel)
    with torch.no_grad():
        _, k, v = TinyLlamaPrefill(lm)(prompt)
    past = torch.export.Dim("past", min=1, max=8192)
    decode = attncc.compile(lm, (prompt[:, :1], k, v), parallel=parallel,
                            dynamic_shapes={"ids": None, "past_k": {3: past}, "past_v": {3: past}})
    return prefill, decode


def generate(prefill, decode, prompt: torch.Tensor, tokens: int) -> tuple[list[int], list[float]]:
    """Greedy tokens and per-token seconds; `prefill`/`decode` are callables like TinyLlama's forward."""
    logits, k, v = prefill(prompt)
    tok = logits[:, -1:].argmax(-1)
    out, times = [int(tok)], []
    for _ in range(tokens - 1):
        start = time.perf_counter()
        logits, k, v = decode(tok, k, v)
        tok = logits[:, -1:].argmax(-1)
        times.append(time.perf_counter() - start)
        out.append(int(tok))
    return out, times


def builds(compiled) -> int:
    """Fresh builds so far of a compiled model (cache hits not counted)."""
    if hasattr(compiled, "builds"):                 # a ShardedModel: its segments' builds
        return compiled.builds
    return compiled.executable.artifacts["program"].builds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel ranks (local processes, gloo)")
    args = parser.parse_args(argv)
    if args.tp > 1:
        from attncc.distributed import launch

        return launch(run, args.tp, args)
    return run(args)


def run(args) -> int:
    """Compile, generate and compare (on every rank of a --tp job; rank 0 prints)."""
    parallel = {"tp": args.tp} if args.tp > 1 else None
    say = print
    if parallel:
        import torch.distributed as dist

        say = print if dist.get_rank() == 0 else (lambda *a, **k: None)
    lm = tiny_llama()
    prompt = torch.randint(0, 512, (1, args.prompt), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    prefill, decode = compile_generator(lm, prompt, parallel)
    # one decode step builds the shape-generic kernels; every later cache length must reuse them
    mine, mine_t = generate(prefill, decode, prompt, 2)
    first = builds(decode)
    say(f"compiled prefill + decode and ran the first step in {time.perf_counter() - start:.1f} s")

    mine, mine_t = generate(prefill, decode, prompt, args.tokens)
    after = builds(decode) - first
    with torch.no_grad():
        ref, ref_t = generate(TinyLlamaPrefill(lm), lm, prompt, args.tokens)

    same = mine == ref
    ms = sorted(t * 1e3 for t in mine_t)[len(mine_t) // 2]
    ref_ms = sorted(t * 1e3 for t in ref_t)[len(ref_t) // 2]
    say(f"{args.tokens} greedy tokens, prompt {args.prompt}: tokens identical to torch eager: {same}")
    say(f"builds after the first decode step: {after}")
    say(f"median per-token latency: attncc {ms:.2f} ms, torch eager {ref_ms:.2f} ms "
          f"(ratio {ref_ms / ms:.2f}x)")
    say("first tokens:", mine[:12])
    return 0 if same and after == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
