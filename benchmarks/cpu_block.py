"""Whole Llama-style decoder block: attncc `cpu` target vs torch eager, same process, same weights.

    python benchmarks/cpu_block.py [--quick] [--engines]

Prints per case: attncc ms, torch eager ms, ratio (attncc / torch; < 1 means attncc is faster),
then the geometric mean ratio; with --engines also torch.compile (inductor) and onnxruntime on the same block,
each timed in its own process. The IR block (tests/backends/cpu_graphs.py:llama_block) and the
torch module below compute the same function: RMSNorm -> q/k/v -> RoPE -> causal GQA SDPA ->
o_proj + residual -> RMSNorm -> SwiGLU MLP + residual.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "backends"))
from cpu_graphs import llama_block  # noqa: E402

from attncc.backends import get_backend  # noqa: E402


class TorchBlock(torch.nn.Module):
    """The same block in torch eager, reading its weights from the IR graph's constants."""

    def __init__(self, graph, hidden, heads, kv_heads):
        super().__init__()
        c = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in graph.constants.items()}
        self.w = c
        self.h, self.kv, self.d = heads, kv_heads, hidden // heads
        self.repeat_kv = False

    def forward(self, x, cos, sin):
        w, b, s = self.w, x.shape[0], x.shape[1]

        def rms(t, g):
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * g

        def rope(t):
            c, sn = cos[:, None], sin[:, None]
            t1, t2 = t[..., : self.d // 2], t[..., self.d // 2:]
            return torch.cat([t1 * c - t2 * sn, t2 * c + t1 * sn], -1)

        n1 = rms(x, w["ln1"])
        q = (n1 @ w["wq"]).view(b, s, self.h, self.d).transpose(1, 2)
        k = (n1 @ w["wk"]).view(b, s, self.kv, self.d).transpose(1, 2)
        v = (n1 @ w["wv"]).view(b, s, self.kv, self.d).transpose(1, 2)
        if self.repeat_kv:  # the ONNX exporter has no enable_gqa: repeat K/V heads instead
            k, v = k.repeat_interleave(self.h // self.kv, 1), v.repeat_interleave(self.h // self.kv, 1)
            a = torch.nn.functional.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True)
        else:
            a = torch.nn.functional.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True, enable_gqa=True)
        h1 = a.transpose(1, 2).reshape(b, s, -1) @ w["wo"] + x
        n2 = rms(h1, w["ln2"])
        return (torch.nn.functional.silu(n2 @ w["wg"]) * (n2 @ w["wu"])) @ w["wd"] + h1


def bench(fn, warmup=3, min_time=1.0) -> float:
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    best = float("inf")
    while time.perf_counter() - t0 < min_time or n < 5:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        n += 1
    return best


def run_case(hidden, heads, kv_heads, seq, ffn) -> float:
    g = llama_block(hidden=hidden, heads=heads, kv_heads=kv_heads, seq=seq, ffn=ffn)
    t0 = time.perf_counter()
    ex = get_backend("cpu").lower(g, {})
    compile_s = time.perf_counter() - t0
    time.sleep(0.5)  # let TVM's thread pool (used while building attention kernels) go idle
    rng = np.random.default_rng(0)
    d = hidden // heads
    x = torch.from_numpy(rng.standard_normal((1, seq, hidden)).astype(np.float32))
    ang = np.arange(seq)[:, None] / (10000 ** (np.arange(d // 2) / (d // 2)))
    cos = torch.from_numpy(np.cos(ang)[None].astype(np.float32))
    sin = torch.from_numpy(np.sin(ang)[None].astype(np.float32))
    ref = TorchBlock(g, hidden, heads, kv_heads)
    with torch.no_grad():
        # torch first: TVM's worker threads spin for a while after each call and would steal
        # torch's cores on this 2-core machine, making torch look slower than it is
        want = ref(x, cos, sin)
        t_torch = bench(lambda: ref(x, cos, sin))
        got = ex([x, cos, sin])[0]
        err = float((got - want).abs().max() / want.abs().max())
        t_cc = bench(lambda: ex([x, cos, sin]))
    # the same block built shape-generic (symbolic seq: one build for every length), run at this length
    gg = llama_block(hidden=hidden, heads=heads, kv_heads=kv_heads, seq="seq", ffn=ffn)
    exg = get_backend("cpu").lower(gg, {})
    with torch.no_grad():
        errg = float((exg([x, cos, sin])[0] - want).abs().max() / want.abs().max())
        t_gen = bench(lambda: exg([x, cos, sin]))
    ratio = t_cc / t_torch
    flops = 2 * seq * (hidden * (hidden + 2 * kv_heads * d) + hidden * hidden + 3 * hidden * ffn) \
        + 2 * heads * seq * seq * d  # causal: half of 4*S^2*d per head
    print(f"llama block h={hidden} heads={heads}/{kv_heads} seq={seq} ffn={ffn}: attncc {t_cc * 1e3:.2f} ms "
          f"({flops / t_cc / 1e9:.0f} GFLOP/s), torch eager {t_torch * 1e3:.2f} ms, ratio {ratio:.2f} "
          f"(compile {compile_s:.1f} s, max rel err {err:.1e}, notes: {ex.notes or 'none'}); "
          f"shape-generic build {t_gen * 1e3:.2f} ms = {t_gen / t_cc:.3f}x the static build (err {errg:.1e})")
    return ratio


def _inputs(hidden, heads, seq):
    rng = np.random.default_rng(0)
    d = hidden // heads
    x = torch.from_numpy(rng.standard_normal((1, seq, hidden)).astype(np.float32))
    ang = np.arange(seq)[:, None] / (10000 ** (np.arange(d // 2) / (d // 2)))
    return (x, torch.from_numpy(np.cos(ang)[None].astype(np.float32)),
            torch.from_numpy(np.sin(ang)[None].astype(np.float32)))


def engine_ms(engine: str, hidden, heads, kv_heads, seq, ffn) -> float:
    """Best ms of `engine` ("inductor" | "onnxruntime") on the block; run in its own process (own thread pool)."""
    g = llama_block(hidden=hidden, heads=heads, kv_heads=kv_heads, seq=seq, ffn=ffn)
    ref = TorchBlock(g, hidden, heads, kv_heads).eval()
    args = _inputs(hidden, heads, seq)
    with torch.no_grad():
        if engine == "inductor":
            fn = torch.compile(ref)
            fn(*args)
            return bench(lambda: fn(*args)) * 1e3
        import tempfile

        import onnxruntime as ort

        ref.repeat_kv = True
        path = os.path.join(tempfile.mkdtemp(), "block.onnx")
        torch.onnx.export(ref, args, path, input_names=["x", "cos", "sin"], opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {"x": args[0].numpy(), "cos": args[1].numpy(), "sin": args[2].numpy()}
        return bench(lambda: sess.run(None, feed)) * 1e3


def other_engines(case) -> dict[str, float | str]:
    """ms per engine, each measured in a separate process (engines with their own thread pools)."""
    import json
    import subprocess

    out = {}
    for engine in ("inductor", "onnxruntime"):
        done = subprocess.run([sys.executable, __file__, "--engine", engine, "--case", ",".join(map(str, case))],
                              capture_output=True, text=True, timeout=1200)
        try:
            out[engine] = json.loads(done.stdout.strip().splitlines()[-1])["ms"]
        except (IndexError, ValueError, KeyError):
            out[engine] = f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:120]}"
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one small case")
    p.add_argument("--engines", action="store_true", help="also time torch.compile (inductor) and onnxruntime, "
                   "each in its own process")
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.engine:
        import json

        print(json.dumps({"ms": engine_ms(args.engine, *map(int, args.case.split(",")))}))
        return
    cases = [(512, 8, 2, 256, 1376)] if args.quick else [(512, 8, 2, 256, 1376), (768, 8, 2, 512, 2048),
                                                          (1024, 8, 2, 512, 2816)]
    ratios = [run_case(*c) for c in cases]
    if args.engines:
        for c in cases:
            print(f"  h={c[0]} seq={c[3]} other engines (own processes):",
                  ", ".join(f"{k} {v:.2f} ms" if isinstance(v, float) else f"{k} {v}"
                            for k, v in other_engines(c).items()))
    print(f"geomean ratio attncc/torch-eager: {math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f}")


if __name__ == "__main__":
    main()
