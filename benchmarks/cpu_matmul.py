"""attncc's Linear kernels on the Llama block's shapes vs this machine's measured fp32 peak, torch and onnxruntime.

    python benchmarks/cpu_matmul.py [--quick] [--no-ort] [--rounds N] [--threads N] [--only TEXT]

Peak: benchmarks/cpu_peak.py (inline-asm FMA chains per core, no TVM/numpy/torch). Cases: the projections
of benchmarks/cpu_block.py's blocks (batch 1, seq S rows): q/o (h x h, o with the residual add fused), k/v
(h x kv_heads*head_dim), the gated gate/up pair (silu(x Wg) * (x Wu): one kernel over packed panels), down
(ffn x h + residual), and a bias+gelu Linear; then decode GEMVs (M = 1, 4, 16 rows) on the same weights, in
GB/s of weights streamed vs this machine's read bandwidth for a buffer of the same size (the same run).
Each case is built by `get_backend("cpu").lower` on a one-group IR graph (its weights packed once at
build time); attncc time = its kernel steps (PlanRunner.profile, best of repeats), whole-call time beside it.
torch (eager; its epilogues unfused) and onnxruntime (MatMul + epilogue nodes) run the same function in the
same process, alternating rounds, best time per engine. Prints the load average before and after.
--threads N runs every engine on N threads against the peak of N cores. With one thread TVM runs the kernel in
the calling thread, so its thread CPU time is measured too ("cpu-time" columns): the time the core really
spent on it, without the time a busy machine's scheduler gave the core to a neighbour (each neighbour's slice
still costs it its caches, so it is an upper bound on the kernel's time on an idle core, not a lower one).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from cpu_peak import best_time, fma_peak, host_cpu, load_average, read_bandwidth  # noqa: E402

from attncc import ir  # noqa: E402
from attncc.backends import get_backend  # noqa: E402
from attncc.ir.ops import Activation, Binary, Linear  # noqa: E402

BLOCKS = [(512, 8, 2, 256, 1376), (768, 8, 2, 512, 2048), (1024, 8, 2, 512, 2816)]   # cpu_block.py's cases
THREADS = len(os.sched_getaffinity(0))   # --threads


def linear_graph(kind: str, m: int, k: int, n: int, seed: int = 0) -> ir.Graph:
    """One fused group: kind in {"plain", "residual", "gated", "bias_gelu"}; input x (1, m, k)."""
    rng = np.random.default_rng(seed)
    g = ir.Graph(f"{kind}_{m}x{k}x{n}")
    x = g.add_input("x", "float32", (1, m, k))

    def w(name):
        return g.add_constant((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32), name)

    if kind == "gated":
        gate = g.add1(Activation("silu"), [g.add1(Linear(), [x, w("wg")], name="gate_proj")])
        y = g.add1(Binary("mul"), [gate, g.add1(Linear(), [x, w("wu")], name="up_proj")], name="gated")
    elif kind == "bias_gelu":
        b = g.add_constant(rng.standard_normal(n).astype(np.float32), "b")
        y = g.add1(Activation("gelu"), [g.add1(Linear(has_bias=True), [x, w("w"), b], name="fc")], name="act")
    else:
        y = g.add1(Linear(), [x, w("w")], name="proj")
        if kind == "residual":
            y = g.add1(Binary("add"), [y, g.add_input("r", "float32", (1, m, n))], name="res")
    g.set_outputs([y])
    return g


def torch_fn(kind: str, g: ir.Graph):
    c = {name: torch.from_numpy(np.asarray(v)) for name, v in g.constants.items()}
    if kind == "gated":
        return lambda x: torch.nn.functional.silu(x @ c["wg"]) * (x @ c["wu"])
    if kind == "bias_gelu":
        return lambda x: torch.nn.functional.gelu(x @ c["w"] + c["b"])
    if kind == "residual":
        return lambda x, r: x @ c["w"] + r
    return lambda x: x @ c["w"]


def ort_fn(kind: str, g: ir.Graph, inputs: list[np.ndarray]):
    """An onnxruntime session computing the same function (None when onnx/onnxruntime are missing)."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    inits = [numpy_helper.from_array(np.asarray(v), name) for name, v in g.constants.items()]
    if kind == "gated":
        nodes = [helper.make_node("MatMul", ["x", "wg"], ["g"]), helper.make_node("MatMul", ["x", "wu"], ["u"]),
                 helper.make_node("Sigmoid", ["g"], ["s"]), helper.make_node("Mul", ["g", "s"], ["a"]),
                 helper.make_node("Mul", ["a", "u"], ["y"])]
    elif kind == "bias_gelu":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["hb"]),
                 helper.make_node("Gelu", ["hb"], ["y"], domain="com.microsoft")]
    elif kind == "residual":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "r"], ["y"])]
    else:
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    ins = [helper.make_tensor_value_info(v.name, TensorProto.FLOAT, list(a.shape)) for v, a in zip(g.inputs, inputs)]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = helper.make_model(helper.make_graph(nodes, "mm", ins, [out], inits),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {v.name: a for v, a in zip(g.inputs, inputs)}
    return lambda: sess.run(None, feed)[0]


def run_case(kind: str, m: int, k: int, n: int, rounds: int, min_time: float, with_ort: bool) -> dict:
    """Times (s) per engine, attncc's kernel-only time, max relative error vs torch."""
    g = linear_graph(kind, m, k, n)
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(tuple(v.shape)).astype(np.float32) for v in g.inputs]
    tens = [torch.from_numpy(a) for a in arrays]
    ex = get_backend("cpu").lower(g, {"num_cores": THREADS})
    runner = next(iter(ex.artifacts["program"].runners.values()))
    ref = torch_fn(kind, g)
    with torch.no_grad():
        want = ref(*tens)
        err = float((ex(tens)[0] - want).abs().max() / want.abs().max())
        engines = {"attncc": lambda: ex(tens), "torch": lambda: ref(*tens)}
        ort = ort_fn(kind, g, arrays) if with_ort else None
        if ort is not None:
            engines["onnxruntime"] = ort
        best = {e: float("inf") for e in engines}
        kernel = cpu_kernel = float("inf")
        for _ in range(rounds):   # alternating rounds: a neighbour's burst hits every engine alike
            for e, fn in engines.items():
                best[e] = min(best[e], best_time(fn, min_time))
                if e == "attncc":
                    reps = max(5, int(min_time / max(best[e], 1e-6)))
                    kernel = min(kernel, sum(s["ms"] for s in runner.profile(tens, reps)) / 1e3)
                    if THREADS == 1:
                        cpu_kernel = min(cpu_kernel, cpu_time_profile(runner, tens, reps))
                time.sleep(0.05)   # let this engine's spinning worker threads go idle
    return {"best": best, "kernel": kernel, "cpu": cpu_kernel, "err": err, "steps": len(runner.plan.steps)}


def cpu_time_profile(runner, tens, reps: int) -> float:
    """Seconds of this thread's CPU time per call of the plan's kernels, best of `reps` (one-thread runs only:
    the pool runs the kernel in the calling thread). The runner's step clock is swapped for the thread clock."""
    real = time.perf_counter
    time.perf_counter = time.thread_time
    try:
        return sum(s["ms"] for s in runner.profile(tens, reps)) / 1e3
    finally:
        time.perf_counter = real


def gemv_cases(blocks, rows) -> list[tuple]:
    out = []
    for h, heads, kvh, _, ffn in blocks:
        for m in rows:
            out += [("plain", m, h, h, f"h{h} q/o"), ("gated", m, h, ffn, f"h{h} gate/up"),
                    ("residual", m, ffn, h, f"h{h} down+res")]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the h512/s256 block's shapes and M=1 decode only")
    p.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds per case (default 3, quick 2)")
    p.add_argument("--threads", type=int, default=None, help="threads per engine (default: every core)")
    p.add_argument("--only", default="", help="only the cases whose label contains this text")
    args = p.parse_args()
    global THREADS
    cores = THREADS = args.threads or THREADS
    torch.set_num_threads(cores)
    rounds = args.rounds or (2 if args.quick else 3)
    min_time = 0.15 if args.quick else 0.3
    print(host_cpu())
    print(load_average(), "(start)")
    peak = fma_peak(args.quick)
    total = sum(peak["per_core"][:cores])
    print(f"fp32 FMA peak {total:.1f} GFLOP/s on {cores} cores ({peak['how']})")
    blocks = BLOCKS[:1] if args.quick else BLOCKS
    cases = []
    for h, heads, kvh, s, ffn in blocks:
        d = h // heads
        cases += [("plain", s, h, h + 2 * kvh * d, f"h{h}/s{s} qkv (fused)"),
                  ("plain", s, h, h, f"h{h}/s{s} q"), ("plain", s, h, kvh * d, f"h{h}/s{s} k,v"),
                  ("residual", s, h, h, f"h{h}/s{s} o+res"), ("gated", s, h, ffn, f"h{h}/s{s} gate/up"),
                  ("residual", s, ffn, h, f"h{h}/s{s} down+res")]
    cases.append(("bias_gelu", blocks[0][3], blocks[0][0], blocks[0][4], f"h{blocks[0][0]} fc+bias+gelu"))
    print(f"\n{'case':24s} {'M x K x N':>16s} {'attncc GF/s':>11s} {'% peak':>7s} {'call ms':>8s} {'torch':>7s} "
          f"{'ort':>7s}  (ms; ratio = engine time / attncc kernel time)   err" + ("   cpu-time GF/s (% peak)"
                                                                                   if cores == 1 else ""))
    fractions = []
    cases = [c for c in cases if args.only in c[-1]]
    for kind, m, k, n, label in cases:
        r = run_case(kind, m, k, n, rounds, min_time, not args.no_ort)
        flops = 2 * m * k * n * (2 if kind == "gated" else 1)
        gf = flops / r["kernel"] / 1e9
        fractions.append(gf / total)
        cpu_gf = flops / r["cpu"] / 1e9 if r["cpu"] < float("inf") else None
        others = " ".join(f"{r['best'][e] * 1e3:7.3f} ({r['best'][e] / r['kernel']:.2f})" if e in r["best"]
                          else f"{'-':>7s}" for e in ("torch", "onnxruntime"))
        print(f"{label:24s} {m:>4d}x{k:>5d}x{n:>5d} {gf:11.1f} {100 * gf / total:6.1f}% {r['best']['attncc'] * 1e3:8.3f} "
              f"{others}  {r['err']:.1e}" + (f"   {cpu_gf:6.1f} ({100 * cpu_gf / total:5.1f}%)" if cpu_gf else ""),
              flush=True)
    if fractions:
        print(f"prefill shapes: min {100 * min(fractions):.1f}%, median {100 * sorted(fractions)[len(fractions) // 2]:.1f}% "
              f"of the {total:.0f} GFLOP/s peak; {load_average()}")
    rows = (1,) if args.quick else (1, 4, 16)
    print(f"\ndecode GEMV (weights streamed once; GB/s of weights; 'bw' = read bandwidth of a buffer of the weights' "
          f"size, same run; roofline = max(weight bytes / bw, FLOPs / peak): M=1 is memory-bound, M=16 compute-bound)")
    bw_cache: dict[int, float] = {}
    for kind, m, k, n, label in [c for c in gemv_cases(blocks, rows) if args.only in c[-1]]:
        r = run_case(kind, m, k, n, rounds, min_time, not args.no_ort)
        nbytes = k * n * 4 * (2 if kind == "gated" else 1)
        if nbytes not in bw_cache:
            bw_cache[nbytes] = read_bandwidth(nbytes, args.quick, cores)
        gbs = nbytes / r["kernel"] / 1e9
        flops = 2 * m * k * n * (2 if kind == "gated" else 1)
        roof = max(nbytes / bw_cache[nbytes] / 1e9, flops / total / 1e9)
        others = " ".join(f"{e} {r['best'][e] * 1e6:7.1f} us" for e in ("torch", "onnxruntime") if e in r["best"])
        print(f"{label:16s} M={m:<3d} {k:>5d}x{n:>5d} ({nbytes / 2 ** 20:5.1f} MB): attncc kernel "
              f"{r['kernel'] * 1e6:7.1f} us {gbs:6.1f} GB/s {flops / r['kernel'] / 1e9:6.1f} GFLOP/s = "
              f"{100 * roof / r['kernel']:5.1f}% of roofline (bw {bw_cache[nbytes]:5.1f} GB/s); "
              f"call {r['best']['attncc'] * 1e6:7.1f} us; {others}; err {r['err']:.1e}", flush=True)
    print(load_average(), "(end)")


if __name__ == "__main__":
    main()
