"""This machine's fp32 FMA peak and memory read bandwidth, measured by tight C kernels (no TVM, numpy or torch).

    python benchmarks/cpu_peak.py [--quick]

Peak: a loop of 12 independent `vfmadd231ps` chains on zmm (AVX-512) or ymm (AVX2) registers, written in
inline assembly so the compiler can neither merge nor drop them, compiled with the system C compiler (cc) and
called through ctypes. Each core is measured alone, pinned to it, as the best of many ~2 ms runs (robust to
neighbours on a shared machine); the machine's peak is the sum over cores of the best register width.
Bandwidth: AVX2 loads summing a buffer, one thread per core each on its own half, best of repeats of the
slowest thread's CPU time.
Without a C compiler the peak falls back to the best of torch.mm on 2048^3 (a lower bound, said so).
"""
from __future__ import annotations

import argparse
import ctypes
import os
import subprocess
import tempfile
import threading
import time

_FMA_BODY = "".join(f'"vfmadd231ps %%{{r}}15,%%{{r}}14,%%{{r}}{i}\\n\\t"\n' for i in range(12))
_C_SOURCE = """
#include <stdint.h>
#include <stddef.h>
#include <immintrin.h>
void fma_zmm(int64_t n) {
  __asm__ volatile("1:\\n\\t" ZMM "dec %0\\n\\t" "jnz 1b\\n\\t" : "+r"(n) ::
    "xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm14","xmm15","cc");
}
void fma_ymm(int64_t n) {
  __asm__ volatile("1:\\n\\t" YMM "dec %0\\n\\t" "jnz 1b\\n\\t" : "+r"(n) ::
    "xmm0","xmm1","xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm14","xmm15","cc");
}
float read_sum(const float* p, size_t n) {   /* n a multiple of 64; 8 add chains: loads, not adds, limit it */
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (size_t i = 0; i < n; i += 64) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));      a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16)); a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
    a4 = _mm256_add_ps(a4, _mm256_loadu_ps(p + i + 32)); a5 = _mm256_add_ps(a5, _mm256_loadu_ps(p + i + 40));
    a6 = _mm256_add_ps(a6, _mm256_loadu_ps(p + i + 48)); a7 = _mm256_add_ps(a7, _mm256_loadu_ps(p + i + 56));
  }
  a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                     _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  float o[8]; _mm256_storeu_ps(o, a0);
  return o[0] + o[1] + o[2] + o[3] + o[4] + o[5] + o[6] + o[7];
}
"""
FLOP_PER_CALL_ITER = 12 * 2   # 12 FMAs per loop iteration, 2 FLOP each (times the lanes)


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def host_cpu() -> str:
    """CPU model, family/model, SIMD and core count as read from this machine (lscpu, /proc/cpuinfo)."""
    info = {}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        info = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}
    except (OSError, subprocess.SubprocessError):
        pass
    flags = cpu_flags()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE"
    return (f"{info.get('Model name', '?')} (family {info.get('CPU family', '?')} model {info.get('Model', '?')}), "
            f"{simd}{' +bf16' if 'avx512_bf16' in flags else ''}, {len(os.sched_getaffinity(0))} cores, "
            f"L1d {info.get('L1d cache', '?')}, L2 {info.get('L2 cache', '?')}, L3 {info.get('L3 cache', '?')}")


def best_time(fn, min_time: float, warmup: int = 1) -> float:
    """Best seconds of one `fn()` call over at least `min_time` s and 5 calls, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    best, t0, n = float("inf"), time.perf_counter(), 0
    while time.perf_counter() - t0 < min_time or n < 5:
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        n += 1
    return best


def load_average() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _library():
    flags = cpu_flags()
    folder = tempfile.mkdtemp(prefix="attncc_peak_")
    src, lib = os.path.join(folder, "peak.c"), os.path.join(folder, "peak.so")
    text = _C_SOURCE.replace("ZMM", _FMA_BODY.replace("{r}", "zmm") if "avx512f" in flags else '""')
    text = text.replace("YMM", _FMA_BODY.replace("{r}", "ymm"))
    with open(src, "w") as f:
        f.write(text)
    subprocess.run(["cc", "-O2", "-mavx2", "-shared", "-fPIC", src, "-o", lib], check=True, capture_output=True)
    so = ctypes.CDLL(lib)
    for name in ("fma_zmm", "fma_ymm"):
        getattr(so, name).restype, getattr(so, name).argtypes = None, [ctypes.c_int64]
    so.read_sum.restype, so.read_sum.argtypes = ctypes.c_float, [ctypes.c_void_p, ctypes.c_size_t]
    return so, "avx512f" in flags


def _best_on_core(fn, core: int, iters: int, repeats: int) -> float:
    """Best seconds of fn(iters) over `repeats` runs, on a thread pinned to `core` (ctypes drops the GIL)."""
    out = []

    def work():
        os.sched_setaffinity(0, {core})   # pid 0 = this thread
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            fn(iters)
            best = min(best, time.perf_counter() - t)
        out.append(best)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    return out[0]


def fma_peak(quick: bool = False) -> dict:
    """{"per_core": [GFLOP/s...], "total": GFLOP/s, "how": text} of fp32 FMAs on this machine."""
    try:
        so, has512 = _library()
    except (OSError, subprocess.SubprocessError) as e:
        return _torch_peak(f"no C compiler ({type(e).__name__})")
    iters, repeats = 80_000, 60 if quick else 300   # 80k iterations of 12 zmm FMAs: ~1-2 ms
    widths = [("zmm", so.fma_zmm, 16)] * has512 + [("ymm", so.fma_ymm, 8)]
    per_core, best_width = [], {}
    for core in sorted(os.sched_getaffinity(0)):
        rates = {w: iters * FLOP_PER_CALL_ITER * lanes / _best_on_core(fn, core, iters, repeats) / 1e9
                 for w, fn, lanes in widths}
        per_core.append(max(rates.values()))
        best_width = rates
    how = ("12 independent vfmadd231ps chains in inline asm, each core alone and pinned, best of "
           f"{repeats} runs; per width on the last core: "
           + ", ".join(f"{w} {r:.1f}" for w, r in best_width.items()) + " GFLOP/s")
    return {"per_core": per_core, "total": sum(per_core), "how": how}


def _torch_peak(why: str) -> dict:
    import torch

    a = torch.randn(2048, 2048)
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        torch.mm(a, a)
        best = min(best, time.perf_counter() - t)
    total = 2 * 2048 ** 3 / best / 1e9
    cores = len(os.sched_getaffinity(0))
    return {"per_core": [total / cores] * cores, "total": total,
            "how": f"{why}: best torch.mm 2048^3 (a LOWER bound on the peak)"}


def read_bandwidth(nbytes: int, quick: bool = False, threads: int | None = None) -> float:
    """GB/s of summing an `nbytes` fp32 buffer, one pinned thread per core (the first `threads` cores) on its own
    part, best of repeats (buffers that fit the L3 are read from it: compare a kernel with the bandwidth of the
    same size). Each thread's CPU time is timed (the slowest counts), not the wall clock: on a busy machine the
    threads are often not scheduled together, and wall time would count a neighbour's slices."""
    import numpy as np

    so, _ = _library()
    cores = sorted(os.sched_getaffinity(0))[:threads]
    n = max(64 * len(cores), nbytes // 4 // (64 * len(cores)) * 64 * len(cores))
    buf = np.ones(n, np.float32)
    part = n // len(cores)
    passes = max(1, (64 << 20) // max(1, nbytes))   # >= ~64 MB read per timing: thread start is noise
    best = float("inf")
    for _ in range(10 if quick else 30):
        barrier, spent = threading.Barrier(len(cores)), []

        def work(i):
            os.sched_setaffinity(0, {cores[i]})
            barrier.wait()
            t = time.thread_time()
            for _ in range(passes):
                so.read_sum(buf.ctypes.data + 4 * i * part, part)
            spent.append(time.thread_time() - t)

        ths = [threading.Thread(target=work, args=(i,)) for i in range(len(cores))]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        best = min(best, max(spent))
    return n * 4 * passes / best / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    print(host_cpu())
    print(load_average())
    peak = fma_peak(args.quick)
    print(f"fp32 FMA peak {peak['total']:.1f} GFLOP/s = " + " + ".join(f"{c:.1f}" for c in peak["per_core"])
          + f" per core ({peak['how']})")
    for mb in (4, 64, 512):
        print(f"read bandwidth, {mb} MB buffer: {read_bandwidth(mb << 20, args.quick):.1f} GB/s")
    print(load_average())


if __name__ == "__main__":
    main()
