"""fp16 GEMM 8192^3: attncc's tensor-core schedule (backends/cuda/tensor_core/schedule.py) vs torch.matmul (cuBLAS).

Two halves, because the GPU machine carries only TVM's runtime (../shared/gpu/README.md):
  CPU machine:  python benchmarks/gpu/gemm.py --build DIR [--arch sm_90a]
                generates the kernel, compiles it with nvcc (fatbin inside DIR/tc_gemm.so) and writes
                DIR/tc_gemm.json (shape, tile, arch).
  GPU machine:  run(DIR) (called by benchmarks/gpu_check.py, or `python benchmarks/gpu/gemm.py DIR`) loads the
                library with the TVM runtime, checks numerics against torch.matmul in fp32 and prints TFLOP/s of
                both and their ratio (CUDA events, same process, same inputs).
Issue 11 target: >= 50% of cuBLAS. Not yet measured (no GPU in the session that wrote this).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

NAME = "tc_gemm"


def build(directory: str, arch: str = "sm_90a", m: int = 8192, n: int = 8192, k: int = 8192,
          dtype: str = "float16") -> dict:
    """CPU side: the tensor-core GEMM for `arch`, AOT-compiled by nvcc into DIR/tc_gemm.so (+ .cu, .json)."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from attncc.backends.cuda.nvcc import export_aot
    from attncc.backends.cuda.tensor_core import build_tc_gemm

    os.makedirs(directory, exist_ok=True)
    ex, tile = build_tc_gemm(m, n, k, dtype, arch)
    path = os.path.join(directory, f"{NAME}.so")
    info = export_aot(ex.mod, path, arch, directory)
    meta = {"m": m, "n": n, "k": k, "dtype": dtype, "arch": arch, "tile": str(tile), "kernels": info["kernels"]}
    with open(os.path.join(directory, f"{NAME}.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


def _time_ms(fn, iters: int) -> float:
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def run(directory: str = ".gpu/gemm", iters: int = 20) -> dict:
    """GPU side: attncc's GEMM from DIR vs torch.matmul; prints and returns TFLOP/s, ratio and max errors."""
    import torch
    import tvm

    with open(os.path.join(directory, f"{NAME}.json")) as f:
        meta = json.load(f)
    m, n, k = meta["m"], meta["n"], meta["k"]
    tdtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[meta["dtype"]]
    lib = tvm.runtime.load_module(os.path.join(directory, f"{NAME}.so"))
    fn = lib["main"]
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(1, m, k, device="cuda", dtype=tdtype, generator=gen)
    b = torch.randn(k, n, device="cuda", dtype=tdtype, generator=gen)
    out = torch.empty(1, m, n, device="cuda", dtype=tdtype)
    ta, tb, tout = (tvm.runtime.from_dlpack(x) for x in (a, b, out))

    fn(ta, tb, tout)
    torch.cuda.synchronize()
    want = a[0].float() @ b.float()                    # fp32 oracle on the same inputs
    ours_err = (out[0].float() - want).abs().max().item()
    cublas = torch.matmul(a[0], b)
    cublas_err = (cublas.float() - want).abs().max().item()
    scale = want.abs().max().item()

    flops = 2.0 * m * n * k
    ours_ms = _time_ms(lambda: fn(ta, tb, tout), iters)
    torch_ms = _time_ms(lambda: torch.matmul(a[0], b, out=cublas), iters)
    res = {"shape": f"{m}x{n}x{k} {meta['dtype']}", "tile": meta["tile"], "arch": meta["arch"],
           "attncc_tflops": flops / ours_ms / 1e9, "cublas_tflops": flops / torch_ms / 1e9,
           "attncc_ms": ours_ms, "cublas_ms": torch_ms, "max_abs_err": ours_err, "cublas_max_abs_err": cublas_err,
           "max_abs_ref": scale}
    res["ratio"] = res["attncc_tflops"] / res["cublas_tflops"]
    res["numerics_ok"] = ours_err <= max(4 * cublas_err, 1e-2 * scale)
    print(f"GEMM {res['shape']} ({res['tile']}, {res['arch']}): attncc {res['attncc_tflops']:.1f} TFLOP/s "
          f"({ours_ms:.3f} ms), cuBLAS {res['cublas_tflops']:.1f} TFLOP/s ({torch_ms:.3f} ms), "
          f"ratio {res['ratio']:.2f} (target >= 0.50); max |err| vs fp32 {ours_err:.3g} (cuBLAS {cublas_err:.3g}, "
          f"|ref| max {scale:.3g}) -> {'OK' if res['numerics_ok'] else 'MISMATCH'}")
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("directory", nargs="?", default=".gpu/gemm")
    p.add_argument("--build", action="store_true", help="CPU side: generate + nvcc-compile into DIRECTORY")
    p.add_argument("--arch", default="sm_90a")
    p.add_argument("--size", type=int, default=8192)
    args = p.parse_args()
    if args.build:
        print(json.dumps(build(args.directory, args.arch, args.size, args.size, args.size), indent=1))
    else:
        run(args.directory)


if __name__ == "__main__":
    main()
