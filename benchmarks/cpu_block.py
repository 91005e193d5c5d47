"""Whole Llama-style decoder block on the CPU: attncc vs torch eager, inductor and onnxruntime, same weights.

    python benchmarks/cpu_block.py [--quick] [--engines] [--rounds N] [--profile]

Cases: prefill at h512/s256, h768/s512, h1024/s512 (batch 1, fp32) and one decode step at h1024: one new
token attending to a KV cache of 2048 tokens (2048 past + the new one), the cache concatenated as
examples/models.py's CachedAttention does (past in, present out).

Every engine runs in its own process (its own thread pool, no spinning workers of another engine), one
process per (case, engine); rounds alternate the engine order (round 1 attncc first, round 2 attncc last).
Printed per round: ms per engine (best of repeats), ratio peer/attncc (> 1: attncc faster), max relative
error vs torch eager, and the load average before/after the round; then each engine's best over the rounds
(a burst of another process's work hits one round, not every one). The host CPU is read from /proc/cpuinfo.
Without --engines only attncc and torch eager run. --profile prints attncc's per-kernel times and
onnxruntime's per-node times (SessionOptions.enable_profiling) for the first case.

The prefill IR block (tests/backends/cpu_graphs.py:llama_block) and `TorchBlock` compute the same function:
RMSNorm -> q/k/v -> RoPE -> causal GQA SDPA -> o_proj + residual -> RMSNorm -> SwiGLU MLP + residual.
The decode step is `decode_block` below (the same weights, RoPE at the new position, K/V appended to the
cache) and `TorchBlock(decode=True)`. attncc compiles the IR graphs with `attncc.compile(graph, target="cpu")`
(the default pipeline, as a user would).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "backends"))
from cpu_graphs import llama_block  # noqa: E402
from cpu_peak import best_time, host_cpu  # noqa: E402  (benchmarks/ is this script's folder)

from attncc import ir  # noqa: E402
from attncc.ir.ops import Activation, Attention, AttentionSpec, Binary, Linear, MaskSpec, Reshape, RMSNorm, Transpose  # noqa: E402
from attncc.ir.ops.attention_spec import RopeSpec  # noqa: E402

PREFILL = [("prefill", 512, 8, 2, 256, 1376), ("prefill", 768, 8, 2, 512, 2048), ("prefill", 1024, 8, 2, 512, 2816)]
DECODE = [("decode", 1024, 8, 2, 2048, 2816)]     # seq = cached tokens before the new one
ENGINES = ("attncc", "onnxruntime", "inductor", "eager")


class TorchBlock(torch.nn.Module):
    """The block in torch eager, reading its weights from the IR graph's constants.

    forward(x, cos, sin) for prefill (causal); with `past` inputs (decode): forward(x, past_k, past_v, cos, sin)
    returns (y, present_k, present_v), the new token's K/V concatenated after the past ones."""

    def __init__(self, graph, hidden, heads, kv_heads, decode: bool = False):
        super().__init__()
        self.w = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in graph.constants.items()}
        self.h, self.kv, self.d = heads, kv_heads, hidden // heads
        self.decode = decode
        self.repeat_kv = False   # the ONNX exporter has no enable_gqa: repeat K/V heads instead

    def forward(self, x, *rest):
        past_k, past_v, cos, sin = rest if self.decode else (None, None, *rest)
        w, b, s = self.w, x.shape[0], x.shape[1]

        def rms(t, g):
            return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6) * g

        def rope(t):
            c, sn = cos[:, None], sin[:, None]
            t1, t2 = t[..., : self.d // 2], t[..., self.d // 2:]
            return torch.cat([t1 * c - t2 * sn, t2 * c + t1 * sn], -1)

        n1 = rms(x, w["ln1"])
        q = rope((n1 @ w["wq"]).view(b, s, self.h, self.d).transpose(1, 2))
        k = rope((n1 @ w["wk"]).view(b, s, self.kv, self.d).transpose(1, 2))
        v = (n1 @ w["wv"]).view(b, s, self.kv, self.d).transpose(1, 2)
        if self.decode:
            k, v = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
        present = (k, v)
        if self.repeat_kv:
            k, v = k.repeat_interleave(self.h // self.kv, 1), v.repeat_interleave(self.h // self.kv, 1)
        sdpa = torch.nn.functional.scaled_dot_product_attention
        # decode: the one new token sees every cached key (no mask); prefill: causal
        a = sdpa(q, k, v, is_causal=not self.decode, **({} if self.repeat_kv else {"enable_gqa": True}))
        h1 = a.transpose(1, 2).reshape(b, s, -1) @ w["wo"] + x
        n2 = rms(h1, w["ln2"])
        y = (torch.nn.functional.silu(n2 @ w["wg"]) * (n2 @ w["wu"])) @ w["wd"] + h1
        return (y, *present) if self.decode else y


def decode_block(hidden, heads, kv_heads, past, ffn) -> ir.Graph:
    """One decode step of `llama_block` in IR: one new token, RoPE at its position inside the Attention op, its
    K/V appended after `past` cached ones (outputs: y, present_k, present_v); the same weights as llama_block."""
    d = hidden // heads
    g = llama_block(hidden=hidden, heads=heads, kv_heads=kv_heads, seq=1, ffn=ffn)
    c = {n: g.constants[n] for n in ("ln1", "wq", "wk", "wv", "wo", "ln2", "wg", "wu", "wd")}
    g = ir.Graph("llama_decode")
    x = g.add_input("x", "float32", (1, 1, hidden))
    past_k = g.add_input("past_k", "float32", (1, kv_heads, past, d))
    past_v = g.add_input("past_v", "float32", (1, kv_heads, past, d))
    cos = g.add_input("cos", "float32", (1, 1, d // 2))
    sin = g.add_input("sin", "float32", (1, 1, d // 2))
    w = {n: g.add_constant(np.asarray(a), n) for n, a in c.items()}
    n1 = g.add1(RMSNorm(eps=1e-6), [x, w["ln1"]], name="attn_norm")
    proj = {}
    for name, h in {"q": heads, "k": kv_heads, "v": kv_heads}.items():
        y = g.add1(Reshape((1, 1, h, d)), [g.add1(Linear(), [n1, w[f"w{name}"]], name=f"{name}_proj")])
        proj[name] = g.add1(Transpose((0, 2, 1, 3)), [y], name=f"{name}_heads")
    spec = AttentionSpec(num_heads=heads, num_kv_heads=kv_heads, head_dim=d, mask=MaskSpec(),
                         rope=RopeSpec("rotate_half", d), kv_cache=True)
    given = {"query": proj["q"], "key": proj["k"], "value": proj["v"], "past_key": past_k, "past_value": past_v,
             "rope_cos": cos, "rope_sin": sin}
    a, present_k, present_v = g.add(Attention(spec=spec), [given[n] for n in spec.input_names()], name="attn")
    a = g.add1(Reshape((1, 1, hidden)), [g.add1(Transpose((0, 2, 1, 3)), [a], name="attn_merge")])
    h1 = g.add1(Binary("add"), [g.add1(Linear(), [a, w["wo"]], name="o_proj"), x], name="res1")
    n2 = g.add1(RMSNorm(eps=1e-6), [h1, w["ln2"]], name="mlp_norm")
    gate = g.add1(Activation("silu"), [g.add1(Linear(), [n2, w["wg"]], name="gate_proj")])
    up = g.add1(Linear(), [n2, w["wu"]], name="up_proj")
    down = g.add1(Linear(), [g.add1(Binary("mul"), [gate, up]), w["wd"]], name="down_proj")
    g.set_outputs([g.add1(Binary("add"), [down, h1], name="res2"), present_k, present_v])
    return g


def make_case(case):
    """(IR graph, torch module, inputs) of a case; the same weights and inputs in every process."""
    kind, hidden, heads, kv_heads, seq, ffn = case
    new = 1 if kind == "decode" else seq
    g = (decode_block(hidden, heads, kv_heads, seq, ffn) if kind == "decode"
         else llama_block(hidden=hidden, heads=heads, kv_heads=kv_heads, seq=seq, ffn=ffn))
    rng = np.random.default_rng(0)
    d = hidden // heads
    pos = np.arange(seq, seq + 1) if kind == "decode" else np.arange(seq)
    ang = pos[:, None] / (10000 ** (np.arange(d // 2) / (d // 2)))

    def t(a):   # torch-allocated (64-byte aligned) copies, as a torch user's tensors are
        return torch.from_numpy(np.asarray(a, np.float32)).clone()

    x = t(rng.standard_normal((1, new, hidden)))
    cos, sin = t(np.cos(ang)[None]), t(np.sin(ang)[None])
    if kind == "decode":
        past = [t(rng.standard_normal((1, kv_heads, seq, d))) for _ in range(2)]
        inputs = (x, *past, cos, sin)
    else:
        inputs = (x, cos, sin)
    return g, TorchBlock(g, hidden, heads, kv_heads, decode=kind == "decode").eval(), inputs


def _max_rel(got, want) -> float:
    got, want = (got if isinstance(got, (list, tuple)) else [got]), (want if isinstance(want, tuple) else (want,))
    return max(float((torch.as_tensor(np.asarray(a)) - b).abs().max() / b.abs().max()) for a, b in zip(got, want))


def engine_run(engine: str, case, min_time: float, profile: bool = False) -> dict:
    """{"ms", "err", "compile_s"} of `engine` on `case`, in this process."""
    g, ref, inputs = make_case(case)
    with torch.no_grad():
        want = ref(*inputs)
        t0 = time.perf_counter()
        if engine == "eager":
            fn, out = (lambda: ref(*inputs)), None
        elif engine == "inductor":
            cfn = torch.compile(ref)
            cfn(*inputs)
            fn = lambda: cfn(*inputs)  # noqa: E731
        elif engine == "onnxruntime":
            fn = _onnxruntime(ref, inputs, profile)
        else:
            import attncc

            cm = attncc.compile(g, target="cpu")
            fn = lambda: cm(*inputs)  # noqa: E731
            time.sleep(0.5)   # TVM's pool was busy building: let it go idle
        compile_s = time.perf_counter() - t0
        err = _max_rel(fn(), want)
        ms = best_time(fn, min_time, warmup=3) * 1e3
    out = {"ms": ms, "err": err, "compile_s": compile_s}
    if profile and engine == "attncc":
        runner = next(iter(cm.executable.artifacts["program"].runners.values()))
        out["kernels"] = [(p["func"], p["op"], p["ms"]) for p in runner.profile([*inputs], 30)]
    if profile and engine == "onnxruntime":
        out["kernels"] = fn.profile()
    return out


def _onnxruntime(ref, inputs, profile: bool):
    import tempfile

    import onnxruntime as ort

    ref.repeat_kv = True
    names = ["x", "past_k", "past_v", "cos", "sin"] if ref.decode else ["x", "cos", "sin"]
    path = os.path.join(tempfile.mkdtemp(), "block.onnx")
    torch.onnx.export(ref, inputs, path, input_names=names, opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    opts.enable_profiling = profile
    opts.profile_file_prefix = os.path.join(os.path.dirname(path), "ort_profile")   # not into the cwd
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {n: a.numpy() for n, a in zip(names, inputs)}

    def run():
        return sess.run(None, feed)

    def node_times():   # per-node best time (ms) over the profiled runs
        with open(sess.end_profiling()) as f:
            events = json.load(f)
        best: dict = {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                key = (e["name"][: -len("_kernel_time")], e["args"].get("op_name", "?"))
                best[key] = min(best.get(key, float("inf")), e["dur"] / 1e3)
        return [(n, op, ms) for (n, op), ms in best.items()]

    run.profile = node_times
    return run


def in_process(engine: str, case, min_time: float, profile: bool = False) -> dict:
    """`engine_run` in a fresh process (its own thread pool); {"failed": reason} when it fails."""
    cmd = [sys.executable, __file__, "--engine", engine, "--case", ",".join(map(str, case)),
           "--min-time", str(min_time)] + (["--profile"] if profile else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"failed": ((done.stderr.strip().splitlines() or ["?"])[-1])[:160]}


def label(case) -> str:
    kind, hidden, heads, kv, seq, ffn = case
    return (f"h{hidden}/s{seq} prefill" if kind == "prefill" else f"h{hidden} decode kv{seq}+1") + f" ({heads}/{kv} heads)"


def print_round(r: int, results: dict, engines, load: tuple) -> None:
    title = f"round {r + 1} (load average before {load[0]:.2f}, after {load[1]:.2f})" if r >= 0 else \
        f"best of the rounds per engine (load average now {load[1]:.2f})"
    print(f"\n{title}; ms, ratio = engine/attncc (> 1: attncc faster), [max rel err vs eager]")
    for case, res in results.items():
        base = res.get("attncc", {}).get("ms")
        cells = []
        for e in engines:
            x = res.get(e, {})
            if "ms" not in x:
                cells.append(f"{e} failed: {x.get('failed', '?')}")
            else:
                ratio = f" {x['ms'] / base:.2f}x" if base and e != "attncc" else ""
                cells.append(f"{e} {x['ms']:.2f}{ratio} [{x['err']:.0e}]")
        print(f"  {label(case):34s} " + " | ".join(cells))


def print_profile(case, res: dict) -> None:
    for e in ("attncc", "onnxruntime"):
        ks = res.get(e, {}).get("kernels") or []
        print(f"\n{e} per-kernel best ms on {label(case)} (sum {sum(k[2] for k in ks):.2f}, "
              f"whole call {res.get(e, {}).get('ms', float('nan')):.2f}):")
        for name, op, ms in sorted(ks, key=lambda k: -k[2])[:24]:
            print(f"  {ms:7.3f}  {op:34s} {name}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="h512/s256 prefill and the decode step, one round, 0.5 s each")
    p.add_argument("--engines", action="store_true", help="also onnxruntime and torch.compile (inductor)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, engine order alternating (default 2)")
    p.add_argument("--profile", action="store_true", help="per-kernel times of attncc and onnxruntime, first case")
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--min-time", type=float, default=1.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if args.engine:
        kind, *rest = args.case.split(",")
        print(json.dumps(engine_run(args.engine, (kind, *map(int, rest)), args.min_time, args.profile)))
        return
    cases = [PREFILL[0], DECODE[0]] if args.quick else PREFILL + DECODE
    rounds, min_time = (1, 0.5) if args.quick else (args.rounds, 1.0)
    engines = ENGINES if args.engines else ("attncc", "eager")
    print(f"host: {host_cpu()}; torch {torch.__version__}; each engine in its own process")
    if args.profile:
        res = {e: in_process(e, cases[0], 0.5, profile=True) for e in ("attncc", "onnxruntime")}
        print_profile(cases[0], res)
    ratios: dict = {}
    best: dict = {}   # (case, engine) -> best ms over the rounds
    for r in range(rounds):
        order = engines if r % 2 == 0 else tuple(reversed(engines))
        before, results = os.getloadavg()[0], {}
        for case in cases:
            results[case] = {e: in_process(e, case, min_time) for e in order}
            for e, x in results[case].items():
                if "ms" in x and "ms" in results[case].get("attncc", {}) and e != "attncc":
                    ratios.setdefault(e, []).append(x["ms"] / results[case]["attncc"]["ms"])
        print_round(r, results, engines, (before, os.getloadavg()[0]))
        for case, res in results.items():
            for e, x in res.items():
                if "ms" in x and x["ms"] < best.get((case, e), {"ms": float("inf")})["ms"]:
                    best[(case, e)] = x
    if rounds > 1:   # a burst of another process's work hits one round: the best of the rounds per engine
        print_round(-1, {c: {e: best[(c, e)] for e in engines if (c, e) in best} for c in cases}, engines,
                    (float("nan"), os.getloadavg()[0]))
    for e, rs in ratios.items():
        print(f"geomean {e}/attncc over {len(rs)} measurements: {math.exp(sum(map(math.log, rs)) / len(rs)):.2f}x")


if __name__ == "__main__":
    main()
