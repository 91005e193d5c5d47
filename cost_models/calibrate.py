"""calibrate_host: measure this CPU (peak FLOP/s per dtype, memory bandwidth, call overhead) and save a spec.

Microbenchmarks are numpy only (no TVM, no torch here): sgemm/dgemm for compute (bf16 and faster fp32
kernels are measured by attncc.calibration and passed in), a 256 MB copy for DRAM and a 256 KB copy (L2-resident) for L2,
an empty-function round trip for call overhead. Cache sizes come from sysfs. The saved JSON keeps
the shipped spec's efficiency factors unless the file already holds fitted ones.

With `kernels` (the result of `attncc.calibration.measure_kernels`, which times attncc's own TVM
kernels; `attncc calibrate --fit` passes it) the per-kernel-class efficiency factors are refitted
against the freshly measured peaks and stored with their source, and the call overheads become
the measured tiny-kernel times.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .fit import fit_efficiency
from .hardware import HardwareSpec, SPEC_DIR, cache_dir, spec_from_dict
from .host_match import this_host


def _best(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure_gemm(dtype: str, n: int = 1024) -> float:
    """FLOP/s of an n³ numpy matmul in `dtype` (float32 or float64). Other dtypes (bfloat16) are measured
    outside cost_models (`attncc.calibration.measure_torch_gemm`) and passed in: cost_models imports no torch."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"measure_gemm measures float32/float64 with numpy, not {dtype!r}; pass other dtypes' "
                         "rates to calibrate_host(dtype_probes=...)")
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = a.copy()
    return 2 * n ** 3 / _best(lambda: a @ b)


def measure_copy(nbytes: int) -> float:
    """Read+write bytes per second of copying an `nbytes` buffer (repeated to amortize timing)."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    reps = max(1, (64 << 20) // nbytes)
    def run():
        for _ in range(reps):
            np.copyto(dst, src)
    return 2 * nbytes * reps / _best(run)


def measure_copy_parallel(nbytes: int, threads: int | None = None, repeat: int = 10) -> float:
    """Read+write bytes per second of copying `nbytes` split over `threads` threads (default: the usable cores;
    numpy's copy releases the GIL), as the kernels' parallel loops stream it. With 8 MB (16 MB of source and
    destination: above the L2s, inside the 32 MB L3) this is the last-level cache's bandwidth."""
    import threading

    threads = threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
    bufs = [(np.ones(nbytes // 4 // threads, np.float32), np.empty(nbytes // 4 // threads, np.float32))
            for _ in range(threads)]
    inner = max(1, (64 << 20) // nbytes)

    def work(i: int, start: threading.Barrier) -> None:
        src, dst = bufs[i]
        start.wait()
        for _ in range(inner):
            np.copyto(dst, src)

    best = float("inf")
    for _ in range(repeat):
        start = threading.Barrier(threads + 1)
        pool = [threading.Thread(target=work, args=(i, start)) for i in range(threads)]
        for t in pool:
            t.start()
        start.wait()
        t0 = time.perf_counter()
        for t in pool:
            t.join()
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes * inner / best


LLC_COPY_BYTES = 8 << 20


def measure_llc(spec_dict: dict, stamp: str | None = None) -> None:
    """Set the shared last-level cache's bandwidth in a spec dict (its "l3" level) to a measured parallel copy of
    LLC_COPY_BYTES, with the load average, in place."""
    stamp = stamp or time.strftime("%Y-%m-%d %H:%M")
    bw, load = measure_copy_parallel(LLC_COPY_BYTES), os.getloadavg()[0]
    for lv in spec_dict["levels"]:
        if lv["name"] == "l3":
            lv["bandwidth_bytes_per_s"] = float(f"{bw:.3g}")
            lv["source"] = (f"capacity: sysfs index3; bandwidth measured {stamp} (load {load:.2f}) by "
                            f"cost_models.calibrate.measure_llc: {LLC_COPY_BYTES >> 20} MB copied, split over the usable "
                            "cores, read+write (what a working set resident in L3 streams at: "
                            "cost_models/kernel_rows.resident_level)")


def measure_call_overhead() -> float:
    """Seconds per trivial Python->compiled call (a numpy add on a 1-element array)."""
    x = np.zeros(1, dtype=np.float32)
    reps = 2000
    def run():
        for _ in range(reps):
            np.add(x, x, out=x)
    return _best(run) / reps


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in block.splitlines())}


def _clock_hz(info: dict[str, str]) -> tuple[float | None, str]:
    """The core clock and where it was read: sysfs cpufreq's maximum (boost) if exposed, else /proc/cpuinfo."""
    p = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if p.exists():
        return int(p.read_text()) * 1e3, "sysfs cpuinfo_max_freq"
    if info.get("cpu MHz"):
        return float(info["cpu MHz"]) * 1e6, ("/proc/cpuinfo 'cpu MHz' (no cpufreq in sysfs: on a VM this is the "
                                              "nominal/TSC clock, not the boost clock the cores really run at)")
    return None, "no clock in sysfs or /proc/cpuinfo"


def theoretical_fp32_peak() -> tuple[float | None, str]:
    """cores x fp32 FMA lanes per cycle x 2 FLOP x clock, from /proc/cpuinfo and sysfs, with how it was derived.

    FMA lanes per cycle per core: two FMA pipes x vector lanes, except AMD Zen 4 (family 25 with AVX-512),
    whose two FMA pipes are 256 bits wide (a 512-bit FMA takes both), i.e. 16 fp32 lanes per cycle.
    Returns (None, reason) when the clock or the vector ISA is unknown.
    """
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if "avx512f" in flags and info.get("vendor_id") == "AuthenticAMD" and info.get("cpu family") == "25":
        lanes, why = 16, "Zen 4: 2 x 256-bit FMA pipes, AVX-512 double-pumped"
    elif "avx512f" in flags:
        lanes, why = 32, "AVX-512: 2 x 512-bit FMA units (parts with one unit reach half)"
    elif {"avx2", "fma"} <= flags:
        lanes, why = 16, "AVX2: 2 x 256-bit FMA units"
    else:
        return None, "theoretical peak not derived: no AVX2/FMA or AVX-512 flags in /proc/cpuinfo"
    hz, clock_src = _clock_hz(info)
    if hz is None:
        return None, f"theoretical peak not derived: {clock_src}"
    flops = cores * lanes * 2 * hz
    return flops, (f"theoretical: {cores} cores x {lanes} fp32 FMA lanes/cycle ({why}) x 2 x {hz / 1e9:.3f} GHz "
                   f"({clock_src}) = {flops / 1e9:.0f} GFLOP/s")


def _sysfs_cache(index: int) -> int | None:
    p = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size")
    if not p.exists():
        return None
    s = p.read_text().strip()
    mult = {"K": 1024, "M": 1 << 20}.get(s[-1], 1)
    return int(s.rstrip("KM")) * mult


def fitted_efficiency(samples, hw: HardwareSpec, launch_s: dict[str, float], source: str) -> dict:
    """The spec's `efficiency` entry after fitting: spec-wide defaults kept, per-class factors
    (with each class's measured call overhead) in by_op, and where they come from."""
    by_op = fit_efficiency(samples, hw, {k: v for k, v in launch_s.items() if k != "launch"})
    for cls, tiny in launch_s.items():   # classes timed only as a tiny kernel: their measured fixed cost per call
        if cls != "launch" and cls not in by_op:
            by_op[cls] = {"launch_s": float(f"{tiny:.3g}"), "tiny_kernel_s": float(f"{tiny:.3g}")}
    keep = {k: v for k, v in hw.efficiency.items() if k in ("compute", "memory", "default_source")}
    keep.setdefault("default_source", "spec-wide compute/memory: default guesses for op kinds without a "
                                      "fitted class (softmax, norms, elementwise); not fitted")
    return {**keep, "by_op": by_op, "source": source}


def calibrate_host(save: bool = True, quick: bool = False, kernels: dict | None = None,
                   fp32_probes: list[dict] | None = None, dtype_probes: dict[str, dict] | None = None) -> HardwareSpec:
    """Measure this machine and return a host-cpu spec; with `save`, write it to cache_dir()/host-cpu.json.

    `get_hardware("host-cpu")` prefers the saved file. `quick` uses smaller sizes (for tests).
    `kernels`: measured kernel times ({"samples", "launch_s", "loads", "date"} as returned by
    `attncc.calibration.measure_kernels`) to refit the efficiency factors on.
    `fp32_probes`: fp32 FLOP/s measured by kernels outside cost_models ({"flops", "source", "load"},
    e.g. `attncc.calibration.measure_matmul_peak`, attncc's TVM matmul). The float32 peak is the best
    of numpy's sgemm and these; every figure (and the theoretical one) is kept in `peak_figures`.
    `dtype_probes`: FLOP/s of dtypes numpy cannot multiply ({"bfloat16": {"flops", "source"}}, e.g.
    `attncc.calibration.measure_torch_gemm`); a dtype without a probe is recorded as not measured.
    """
    base = json.loads((SPEC_DIR / "host-cpu.json").read_text())
    target = cache_dir() / "host-cpu.json"
    if target.exists():  # keep efficiency factors fitted earlier
        base["efficiency"] = json.loads(target.read_text()).get("efficiency", base["efficiency"])
    n = 512 if quick else 2048
    stamp = time.strftime("%Y-%m-%d %H:%M")
    rates, srcs = {}, []
    for dt in ("float32", "float64"):
        rates[dt] = measure_gemm(dt, n)
        srcs.append(f"{dt} {rates[dt] / 1e9:.0f} GFLOP/s (numpy {n}^3 matmul)")
    for dt in ("bfloat16",):     # measured outside cost_models (torch), passed in
        probe = (dtype_probes or {}).get(dt)
        if probe:
            rates[dt] = probe["flops"]
            srcs.append(f"{dt} {rates[dt] / 1e9:.0f} GFLOP/s ({probe.get('source', 'probe')})")
        else:
            srcs.append(f"{dt} not measured (no probe given; `attncc calibrate` measures it with torch)")
    load = os.getloadavg()[0]
    figures = [{"name": "numpy-sgemm", "flops": rates["float32"], "load": round(load, 2),
                "source": f"measured by calibrate_host {stamp}: numpy {n}^3 sgemm"}] if "float32" in rates else []
    figures += [{"name": p.get("name", "probe"), **{k: p[k] for k in ("flops", "source", "load") if k in p}}
                for p in fp32_probes or ()]
    if figures:  # practical peak: the fastest measured fp32 kernel
        best = max(figures, key=lambda f: f["flops"])
        rates["float32"] = best["flops"]
        srcs[0] = f"float32 {best['flops'] / 1e9:.0f} GFLOP/s (best measured: {best['source']})"
    theory, theory_src = theoretical_fp32_peak()
    figures.append({"name": "theoretical", "flops": theory, "source": theory_src})
    base["compute_units"] = [{"name": "simd", "peak_flops": rates, "source": f"measured by calibrate_host {stamp}: " + "; ".join(srcs),
                              "note": "float32 is the best of peak_figures' measured kernels"}]
    base["peak_figures"] = {"float32": figures}
    dram = measure_copy((32 if quick else 256) << 20)
    l2 = measure_copy(256 << 10)
    sizes = {1: _sysfs_cache(0), 2: _sysfs_cache(2), 3: _sysfs_cache(3)}
    for lv in base["levels"]:
        if lv["name"] == "dram":
            lv["bandwidth_bytes_per_s"] = dram
            lv["source"] = f"measured by calibrate_host {stamp}: {(32 if quick else 256)} MB numpy copy, read+write"
        elif lv["name"] == "l2":
            lv["bandwidth_bytes_per_s"] = l2
            lv["source"] = f"measured by calibrate_host {stamp}: 256 KB (L2-resident) copy, read+write; capacity from sysfs"
        key = {"l1d": 1, "l2": 2, "l3": 3}.get(lv["name"])
        if key and sizes.get(key):
            lv["capacity_bytes"] = sizes[key]
    measure_llc(base, stamp)
    base["launch_overhead_s"] = measure_call_overhead()
    base["launch_source"] = f"measured by calibrate_host {stamp}: trivial numpy call round trip"
    base["calibrated"] = stamp
    base["host"] = this_host()   # which CPU these figures describe (reports elsewhere say uncalibrated)
    host = base["host"]
    base["description"] = (f"Calibrated on {host['cpu_model'] or 'this machine'} ({host['isa'] or 'unknown ISA'}, "
                           f"{host['logical_cpus']} logical CPUs) by `attncc calibrate` {stamp}")
    spec = spec_from_dict(base, str(target))
    if kernels is not None:
        loads, n = kernels.get("loads") or [float("nan")], len(kernels["samples"])
        base["efficiency"] = fitted_efficiency(
            kernels["samples"], spec, kernels["launch_s"],
            f"fit by calibrate_host on {n} kernels of attncc.calibration (as benchmarks/cost_model_accuracy.py), "
            f"{kernels.get('date', stamp)}, load {min(loads):.2f}-{max(loads):.2f}")
        base["launch_overhead_s"] = kernels["launch_s"]["launch"]
        base["launch_source"] = f"measured by calibrate_host {stamp}: a tiny attncc attention kernel, cold caches"
        spec = spec_from_dict(base, str(target))
    if save:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(base, indent=2))
    return spec
