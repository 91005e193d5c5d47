"""The cuda target on a GPU machine, in one prepared run: numerics, attncc vs torch, cost model vs measured.

Two halves, because the GPU machine has torch but no TVM compiler (see ../shared/gpu/README.md and docs/cuda.md):

  # 1. here (TVM + nvcc, no GPU): compile and export every case for the GPU's arch
  python benchmarks/gpu_check.py prepare --arch sm_90a --out gpu_check_artifacts
  ../shared/gpu/make-bundle.sh            # .gpu/: TVM's runtime only, ~32 MB

  # 2. on the GPU machine (carry .gpu and gpu_check_artifacts), from the project root
  source .gpu/env.sh && python benchmarks/gpu_check.py run --artifacts gpu_check_artifacts --json $OUT/gpu_check.json

`run` imports neither attncc nor TVM's compiler: each exported folder is loaded with its own attncc_runtime.py
and TVM's runtime (the kernels are nvcc-compiled fatbins inside the libraries). It checks
  numerics  every test model and variant (the cuda sweep's cases): exported outputs on the GPU vs the expected
            outputs saved by `prepare` (torch eager for torch models, the reference interpreter for IR graphs;
            the variants' independent torch oracles are tests/variants/test_identities.py)
  speed     attncc vs torch SDPA with the cuDNN and flash backends in the same run: MHA fp16 B4 H32 N4096 D128
            full/causal, GQA 32q/8kv causal, D64, GQA decode KV 8192 (GB/s vs the measured copy bandwidth),
            MLA absorbed decode (DeepSeek-V3 dims, B64 KV 4096: GB/s, TFLOP/s vs torch.compile of the absorbed
            reference), sliding window W512 N8192 vs FlexAttention; fp16 GEMM via benchmarks/gpu/gemm.py run()
            when that file exists
  cost      the cost model's predicted time (h100-sxm spec, saved by `prepare`) vs measured per attncc kernel:
            median relative error and Spearman rank correlation
  graphs    a CUDA-graph capture experiment on the decode step (torch.cuda.graph around the TVM launches)
Without a CUDA GPU `run` exits with status 2 and says so; timings are medians of CUDA-event-timed repeats.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# (name, batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal, window)
BENCH = [
    ("mha-full-d128", 4, 32, 32, 4096, 4096, 128, False, None),
    ("mha-causal-d128", 4, 32, 32, 4096, 4096, 128, True, None),
    ("gqa-causal-d128", 4, 32, 8, 4096, 4096, 128, True, None),
    ("mha-full-d64", 8, 16, 16, 2048, 2048, 64, False, None),
    ("gqa-decode-kv8192", 16, 32, 8, 1, 8192, 128, False, None),
    ("sliding-w512-n8192", 1, 32, 32, 8192, 8192, 128, True, 512),
]
MLA = ("mla-absorbed-decode-b64-kv4096", 64, 4096)   # DeepSeek-V3: 128 heads, nope 128 + rope 64, latent 512


# ---------------------------------------------------------------------------------------------- prepare (CPU)
def _attention_graph(b, hq, hkv, sq, skv, d, causal, window):
    from attncc import ir
    from attncc.ir.ops import Attention, AttentionSpec, MaskSpec

    spec = AttentionSpec(num_heads=hq, num_kv_heads=hkv, head_dim=d,
                         mask=MaskSpec(causal=causal, window_left=window))
    g = ir.Graph("bench")
    ins = [g.add_input("q", "float16", (b, hq, sq, d)), g.add_input("k", "float16", (b, hkv, skv, d)),
           g.add_input("v", "float16", (b, hkv, skv, d))]
    g.set_outputs(list(g.add(Attention(spec=spec), ins, name="attn")))
    return g


def _mla_graph(b, kv):
    from attncc import ir
    from attncc.ir.ops import Attention, AttentionSpec
    from attncc.ir.ops.attention_features import MLA as MLAFeature

    g = ir.Graph("mla_decode")
    spec = AttentionSpec(128, 1, 192, v_head_dim=128, kv_source=MLAFeature(512, 64, True))
    ins = [g.add_input("q", "float16", (b, 128, 1, 192)), g.add_input("cache", "float16", (b, 1, kv, 576)),
           g.add_input("c_kv", "float16", (b, 1, kv, 512)), g.add_input("w_uk", "float16", (512, 128, 128)),
           g.add_input("w_uv", "float16", (512, 128, 128))]
    g.set_outputs(list(g.add(Attention(spec=spec), ins, name="mla")))
    return g


def _kernels(cm) -> list[dict]:
    return [{"func": s.get("func"), "kind": s["kind"], "kernel": s.get("kernel")}
            for r in cm.executable.artifacts["program"].runners.values() for s in r.plan.steps]


def prepare(args) -> int:
    """Compile + export every case for args.arch into args.out (needs TVM's compiler and nvcc, not a GPU)."""
    import numpy as np
    import torch

    import attncc

    sys.path[:0] = [os.path.join(ROOT, "tests", "backends"), os.path.join(ROOT), os.path.join(ROOT, "examples")]
    from attncc.ir import run_graph
    from cpu_graphs import rng_arrays
    from test_cuda_sweep import cases

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    opts = {"arch": args.arch, "cache": False}
    manifest = {"arch": args.arch, "numerics": [], "bench": []}
    numerics = [] if args.bench_only else cases()
    for name, model, extra in numerics:
        if args.only and args.only not in name:
            continue
        t0 = time.time()
        folder = os.path.join(out, "numerics", name)
        try:
            if isinstance(model, attncc.ir.Graph):
                if any(isinstance(d, str) for v in model.inputs for d in v.shape):
                    ins = extra if isinstance(extra, list) else rng_arrays(model, shapes=extra)
                else:
                    ins = extra if isinstance(extra, list) else rng_arrays(model)
                cm = attncc.compile(model, target="cuda", options=opts)
                want = [np.asarray(x) for x in run_graph(model, list(ins))]
                oracle = "reference interpreter"
            else:
                ins = [x.numpy() for x in extra]
                cm = attncc.compile(model, extra, target="cuda", options=opts)
                with torch.no_grad():
                    res = model(*extra)
                want = [t.detach().numpy() for t in (res if isinstance(res, (tuple, list)) else [res])]
                oracle = "torch eager"
            cm.export(folder)
            np.savez(os.path.join(folder, "check_inputs.npz"), *[np.asarray(x) for x in ins])
            np.savez(os.path.join(folder, "check_expected.npz"), *want)
            manifest["numerics"].append({"name": name, "folder": os.path.relpath(folder, out), "oracle": oracle,
                                         "host_steps": [n for n in cm.executable.notes if "numpy reference" in n]})
            print(f"prepared {name} ({time.time() - t0:.0f} s)", flush=True)
        except Exception as e:  # noqa: BLE001 - one failing case is reported, the rest still prepared
            manifest["numerics"].append({"name": name, "error": f"{type(e).__name__}: {e}"[:400]})
            print(f"FAILED to prepare {name}: {type(e).__name__}: {e}", flush=True)
    benches = [(n, _attention_graph(*rest), {"shape": rest}) for n, *rest in BENCH]
    benches.append((MLA[0], _mla_graph(MLA[1], MLA[2]), {"mla": [MLA[1], MLA[2]]}))
    for name, graph, meta in benches:
        if args.only and args.only not in name:
            continue
        folder = os.path.join(out, "bench", name)
        cm = attncc.compile(graph, target="cuda", options=opts)
        cm.export(folder)
        predicted = attncc.analyze(graph, hardware="h100-sxm").total_time_s   # the cost model's figure
        manifest["bench"].append({"name": name, "folder": os.path.relpath(folder, out), **meta,
                                  "predicted_s": predicted, "kernels": _kernels(cm)})
        print(f"prepared bench {name}: predicted {predicted * 1e3:.3f} ms", flush=True)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {out}/manifest.json; now ../shared/gpu/make-bundle.sh and carry .gpu + {args.out}")
    return 0


# ---------------------------------------------------------------------------------------------- run (GPU)
def _time(fn, reps=20, warmup=3) -> float:
    """Median seconds of fn() by CUDA events."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / 1e3)
    return sorted(ts)[len(ts) // 2]


def _load(folder: str):
    """The exported model through its own attncc_runtime (TVM runtime only), on cuda:0."""
    import importlib.util

    import tvm

    spec = importlib.util.spec_from_file_location(f"rt_{abs(hash(folder))}", os.path.join(folder, "attncc_runtime.py"))
    rt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rt)
    return rt.load_folder(folder, device=tvm.cuda(0))


def _torch_out(x):
    import torch

    return torch.from_dlpack(x)


def _spearman(a, b) -> float:
    import numpy as np

    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 1 else float("nan")


def run_numerics(base, manifest, results):
    import numpy as np
    import torch

    for case in manifest["numerics"]:
        row = {"name": case["name"]}
        if "error" in case:
            row["status"] = "not prepared: " + case["error"]
        else:
            try:
                folder = os.path.join(base, case["folder"])
                model = _load(folder)
                with np.load(os.path.join(folder, "check_inputs.npz")) as d:
                    ins = [torch.from_numpy(d[f"arr_{i}"]).cuda() for i in range(len(d.files))]
                with np.load(os.path.join(folder, "check_expected.npz")) as d:
                    want = [d[f"arr_{i}"] for i in range(len(d.files))]
                got = [_torch_out(o).float().cpu().numpy() for o in model.run(ins)]
                low = any(x.dtype in (torch.float16, torch.bfloat16) for x in ins) or "16" in case["name"]
                tol = 2e-2 if low else 2e-3
                errs = [float(np.max(np.abs(g - w.astype(np.float32))) / (np.max(np.abs(w)) + 1e-6))
                        for g, w in zip(got, want)]
                row.update(max_rel_err=max(errs), oracle=case["oracle"],
                           status="ok" if max(errs) <= tol else f"MISMATCH (tol {tol})")
            except Exception as e:  # noqa: BLE001 - reported per case
                row["status"] = f"error: {type(e).__name__}: {e}"[:300]
        results["numerics"].append(row)
        print(f"numerics {row['name']:60s} {row['status']} {row.get('max_rel_err', '')}", flush=True)


def _copy_bandwidth() -> float:
    import torch

    x = torch.empty(2 << 30 >> 1, dtype=torch.float16, device="cuda")   # 2 GiB
    y = torch.empty_like(x)
    t = _time(lambda: y.copy_(x), reps=10)
    return 2 * x.numel() * 2 / t     # read + write bytes / s


def run_bench(base, manifest, results):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    bw = _copy_bandwidth()
    results["copy_bandwidth_GBs"] = bw / 1e9
    print(f"device copy bandwidth {bw / 1e9:.0f} GB/s", flush=True)
    for case in manifest["bench"]:
        row = {"name": case["name"], "predicted_s": case["predicted_s"]}
        try:
            model = _load(os.path.join(base, case["folder"]))
            if "mla" in case:
                b, kv = case["mla"]
                q = torch.randn(b, 128, 1, 192, device="cuda", dtype=torch.float16)
                cache = torch.randn(b, 1, kv, 576, device="cuda", dtype=torch.float16)
                c = cache[..., :512].contiguous()
                w_uk = 0.05 * torch.randn(512, 128, 128, device="cuda", dtype=torch.float16)
                w_uv = 0.05 * torch.randn(512, 128, 128, device="cuda", dtype=torch.float16)
                ins = [q, cache, c, w_uk, w_uv]

                def ref(q, cache, c, w_uk, w_uv):
                    q_abs = torch.cat([torch.einsum("bhsn,lhn->bhsl", q[..., :128], w_uk), q[..., 128:]], -1)
                    p = torch.softmax((q_abs @ cache.transpose(-1, -2)).float() * 192 ** -0.5, -1).to(q.dtype)
                    return torch.einsum("bhsl,lhd->bhsd", p @ c, w_uv)

                comp = torch.compile(ref)
                row["attncc_s"] = _time(lambda: model.run(ins))
                row["torch_compile_s"] = _time(lambda: comp(*ins))
                got = _torch_out(model.run(ins)[0]).float()
                row["max_abs_err_vs_torch"] = float((got - ref(*ins).float()).abs().max())
                nbytes = cache.numel() * 2 + q.numel() * 2 + (w_uk.numel() + w_uv.numel()) * 2
                flops = 2 * b * 128 * kv * (576 + 512) + 2 * 2 * b * 128 * 512 * 128
                row.update(attncc_GBs=nbytes / row["attncc_s"] / 1e9, attncc_TFLOPs=flops / row["attncc_s"] / 1e12)
            else:
                b, hq, hkv, sq, skv, d, causal, window = case["shape"]
                q = torch.randn(b, hq, sq, d, device="cuda", dtype=torch.float16)
                k = torch.randn(b, hkv, skv, d, device="cuda", dtype=torch.float16)
                v = torch.randn(b, hkv, skv, d, device="cuda", dtype=torch.float16)
                ins = [q, k, v]
                row["attncc_s"] = _time(lambda: model.run(ins))
                got = _torch_out(model.run(ins)[0]).float()
                gqa = hq != hkv
                if window is None:
                    want = F.scaled_dot_product_attention(q, k, v, is_causal=causal and sq > 1, enable_gqa=gqa)
                    for label, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
                        try:
                            with sdpa_kernel(backend):
                                row[f"torch_{label}_s"] = _time(lambda: F.scaled_dot_product_attention(
                                    q, k, v, is_causal=causal and sq > 1, enable_gqa=gqa))
                        except Exception as e:  # noqa: BLE001 - a backend that does not take this case
                            row[f"torch_{label}_s"] = f"unavailable: {e}"[:160]
                else:
                    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

                    def sliding(b_, h_, qi, ki):
                        return (ki <= qi) & (qi - ki <= window)

                    bm = create_block_mask(sliding, None, None, sq, skv)
                    flex = torch.compile(flex_attention)
                    want = flex(q, k, v, block_mask=bm)
                    row["torch_flex_s"] = _time(lambda: flex(q, k, v, block_mask=bm))
                row["max_abs_err_vs_torch"] = float((got - want.float()).abs().max())
                if sq == 1:
                    row["attncc_GBs"] = (k.numel() + v.numel() + 2 * q.numel()) * 2 / row["attncc_s"] / 1e9
                    row["fraction_of_copy_bw"] = row["attncc_GBs"] * 1e9 / bw
                else:
                    keep = sq * skv if not causal else sq * (skv + 1) / 2
                    if window is not None:
                        keep = sq * (window + 1)
                    row["attncc_TFLOPs"] = 4 * b * hq * keep * d / row["attncc_s"] / 1e12
        except Exception as e:  # noqa: BLE001 - reported per case
            row["error"] = f"{type(e).__name__}: {e}"[:300]
        results["bench"].append(row)
        print("bench", json.dumps(row), flush=True)
    gemm = os.path.join(ROOT, "benchmarks", "gpu", "gemm.py")
    if os.path.exists(gemm):
        import importlib.util

        spec = importlib.util.spec_from_file_location("attncc_gpu_gemm", gemm)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        try:
            results["gemm"] = mod.run()
        except Exception as e:  # noqa: BLE001
            results["gemm"] = f"error: {type(e).__name__}: {e}"[:300]
        print("gemm", results["gemm"], flush=True)
    else:
        results["gemm"] = "benchmarks/gpu/gemm.py not in this checkout"


def run_cost(results):
    import numpy as np

    rows = [r for r in results["bench"] if isinstance(r.get("attncc_s"), float) and r.get("predicted_s")]
    if not rows:
        return
    pred = np.array([r["predicted_s"] for r in rows])
    meas = np.array([r["attncc_s"] for r in rows])
    results["cost_model"] = {"median_rel_err": float(np.median(np.abs(pred - meas) / meas)),
                             "spearman": _spearman(pred, meas), "cases": len(rows),
                             "note": "predicted with the h100-sxm spec; on an H200 the HBM bandwidth differs"}
    print("cost model", results["cost_model"], flush=True)


def run_cuda_graph(base, manifest, results):
    """Capture the decode step's TVM launches in a torch CUDA graph (tvm-ffi launches on torch's current
    stream); replay must match eager, and the launch-overhead saving is reported."""
    import torch

    case = next((c for c in manifest["bench"] if c["name"].startswith("gqa-decode")), None)
    if case is None:
        return
    b, hq, hkv, sq, skv, d, _, _ = case["shape"]
    model = _load(os.path.join(base, case["folder"]))
    ins = [torch.randn(b, h, s, d, device="cuda", dtype=torch.float16) for h, s in ((hq, sq), (hkv, skv), (hkv, skv))]
    row = {"case": case["name"]}
    try:
        eager = _torch_out(model.run(ins)[0]).clone()
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            for _ in range(3):
                model.run(ins)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        import gc

        gc.disable()   # a module finalized during capture would invalidate it (as tvm.tirx.bench does)
        try:
            with torch.cuda.graph(g):
                outs = model.run(ins)
        finally:
            gc.enable()
        g.replay()
        torch.cuda.synchronize()
        row["replay_matches_eager"] = bool(torch.allclose(_torch_out(outs[0]), eager, atol=1e-3))
        row["eager_s"] = _time(lambda: model.run(ins))
        row["graph_s"] = _time(g.replay)
    except Exception as e:  # noqa: BLE001 - the finding is the result
        row["error"] = f"{type(e).__name__}: {e}"[:300]
    results["cuda_graph"] = row
    print("cuda graph", row, flush=True)


def run(args) -> int:
    try:
        import torch
    except ImportError:
        print("gpu_check run: torch is not installed (the GPU machine's python has it)", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_check run: no CUDA GPU present (torch.cuda.is_available() is False); run `prepare` here and "
              "`run` on a GPU machine (docs/cuda.md)", file=sys.stderr)
        return 2
    base = os.path.abspath(args.artifacts)
    with open(os.path.join(base, "manifest.json")) as f:
        manifest = json.load(f)
    results = {"device": torch.cuda.get_device_name(), "arch": manifest["arch"], "numerics": [], "bench": []}
    run_numerics(base, manifest, results)
    run_bench(base, manifest, results)
    run_cost(results)
    run_cuda_graph(base, manifest, results)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    bad = [r["name"] for r in results["numerics"] if r.get("status") != "ok"]
    print(f"numerics: {len(results['numerics']) - len(bad)} ok, {len(bad)} not ok {bad}")
    return 1 if bad else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="compile + export every case (TVM + nvcc machine, no GPU needed)")
    pp.add_argument("--arch", default="sm_90a", choices=["sm_80", "sm_90a"])
    pp.add_argument("--out", default="gpu_check_artifacts")
    pp.add_argument("--only", default="", help="only cases whose name contains this")
    pp.add_argument("--bench-only", action="store_true", help="skip the numerics cases")
    pr = sub.add_parser("run", help="on the GPU machine: numerics, timings vs torch, cost model, CUDA graph")
    pr.add_argument("--artifacts", default="gpu_check_artifacts")
    pr.add_argument("--json", default="", help="write the results here")
    args = p.parse_args(argv)
    return prepare(args) if args.cmd == "prepare" else run(args)


if __name__ == "__main__":
    sys.exit(main())
