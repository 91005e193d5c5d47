"""Measured kernel times for fitting the host cost model: attncc's own TVM kernels, timed honestly.

`measure_kernels()` builds the CPU backend's attention kernels (flash prefill, split-KV decode;
MHA/GQA/MQA, causal, sliding window, softcap) and scheduled matmuls (packed weights as a Linear
uses them, and unpacked activation products), times each one and returns `KernelSample`s that
`attncc.cost_models.fit` turns into efficiency factors. It lives here, not in cost_models, because it
runs TVM kernels; the cpu backend builds them (`attncc.backends.cpu.kernel_suite`, its public timing API) and the
caller passes that suite in (`measure_kernels(suite)`), so this module imports neither TVM nor any backend
(tests/api/test_layering.py).

Timing protocol (the cost model prices a kernel whose operands come from main memory, as in a
model where each layer's weights and KV cache have been evicted by the others):
  * inputs are 64-byte aligned tvm tensors prepared once, so only the kernel call is timed
    (the numpy wrapper would otherwise copy unaligned inputs on every call);
  * a 64 MB buffer (2x the 32 MB L3) is rewritten before every timed call (cold caches);
  * the kernels are timed in several interleaved rounds and the minimum is kept, so a
    burst of load from other processes on this shared 2-core machine hits one round, not
    every sample; the load average is recorded with each round.
Packing a Linear's weight happens at load time and is not timed.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from attncc.errors import AttnccError

FLUSH_BYTES = 64 << 20


@dataclass
class KernelSample:
    """One kernel: what the cost model needs to price it (`job`) and its measured seconds."""

    label: str
    job: tuple
    measured_s: float = math.inf
    runs: list[float] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """Kernel class: 'attention.prefill', 'attention.decode', 'matmul', or a plan kernel's ('elementwise', ...)."""
        if self.job[0] == "row":
            return self.job[2]
        if self.job[0] == "attention":
            return "attention.decode" if self.job[5].num_splits else "attention.prefill"
        return "matmul.gemv" if self.job[1] <= 16 else "matmul"   # as cost_models.matmul_cost.matmul_class


def load_average() -> float:
    """1-minute load average (how many runnable processes share the cores)."""
    return os.getloadavg()[0]


def usable_cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class BusyMachineError(AttnccError, RuntimeError):
    """The machine is too loaded to measure peaks honestly; names the load and how to override."""


MAX_LOAD_PER_CORE = 0.5


def check_machine_load(force: bool = False, max_per_core: float = MAX_LOAD_PER_CORE) -> str:
    """Refuse (BusyMachineError) to calibrate when the 1-minute load per core exceeds `max_per_core`,
    since other processes would make every measured peak too low; `force` measures anyway.
    Returns a line describing the load for the log."""
    load, cores = load_average(), usable_cores()
    line = f"load average {load:.2f} on {cores} core(s) ({load / cores:.2f} per core)"
    if load / cores > max_per_core and not force:
        raise BusyMachineError(f"the machine is busy: {line}, above {max_per_core} per core, so the measured peaks "
                               "would be too low; wait until it is idle or pass --force to measure anyway")
    return line + (" — busy, measuring anyway (--force)" if load / cores > max_per_core else "")


# ---- the kernels ------------------------------------------------------------------------------
PREFILL = [  # (B, Hq, Hkv, N, D, causal, window, softcap); ordered so that the even (calibration) and odd
    # (held-out) kernels each mix head dims 32-128, causal/full, windows, softcap and small/large
    (1, 8, 8, 256, 64, False, None, None), (1, 8, 8, 512, 64, True, None, None),
    (1, 8, 1, 512, 128, False, None, None), (1, 4, 4, 1024, 128, True, None, None),
    (1, 4, 4, 2048, 64, True, 256, None), (1, 4, 4, 1024, 64, True, 128, None),
    (1, 8, 8, 384, 96, False, None, None), (1, 4, 2, 1024, 96, True, None, None),
    (1, 2, 2, 64, 32, False, None, None), (1, 8, 8, 256, 32, True, None, None),
    (1, 8, 8, 1024, 64, True, None, None), (1, 4, 4, 1024, 64, False, None, None),
    (2, 8, 2, 512, 64, True, None, None), (1, 2, 2, 512, 64, False, None, 30.0),
    (1, 16, 4, 512, 64, True, None, None), (4, 4, 4, 256, 64, True, None, None),
    (1, 4, 4, 512, 128, False, None, None), (1, 8, 8, 128, 64, False, None, None),
    (1, 2, 2, 2048, 64, True, None, None), (2, 4, 4, 768, 64, False, None, None),
    (1, 4, 4, 200, 64, True, None, None), (1, 2, 2, 1024, 64, True, 512, 30.0),
]
DECODE = [  # (B, Hq, Hkv, KV, D)
    (1, 8, 8, 1024, 64), (1, 8, 8, 4096, 64), (4, 8, 8, 2048, 64), (1, 32, 8, 4096, 128), (8, 32, 8, 2048, 128),
    (1, 32, 1, 8192, 128), (2, 16, 16, 8192, 64), (1, 8, 2, 16384, 64), (16, 8, 8, 1024, 64), (1, 4, 4, 512, 64),
    (4, 32, 4, 4096, 128), (1, 16, 16, 2048, 128), (1, 32, 32, 32768, 128), (2, 4, 1, 256, 64),
]
MATMUL = [  # (M, N, K, packed weight)
    (512, 512, 512, False), (1024, 1024, 1024, True), (2048, 512, 512, False), (256, 4096, 1024, True),
    (2, 4096, 4096, True), (8, 4096, 1024, True), (128, 1024, 4096, False), (64, 64, 4096, False),
    (1536, 1536, 256, True), (4096, 256, 256, False), (4, 11008, 4096, True), (32, 4096, 4096, True),
    (1, 4096, 4096, True), (1, 11008, 4096, True),
]


def attention_configs(quick: bool = False) -> list[dict]:
    """Keyword arguments of `kernel_suite.attention_case` for the suite (a third of them with `quick`)."""
    cfgs = [dict(batch=b, q_heads=hq, kv_heads=hkv, q_len=n, kv_len=n, head_dim=d, causal=c, window_left=w, softcap=cap)
            for b, hq, hkv, n, d, c, w, cap in PREFILL]
    cfgs += [dict(batch=b, q_heads=hq, kv_heads=hkv, q_len=1, kv_len=kv, head_dim=d, causal=True)
             for b, hq, hkv, kv, d in DECODE]
    return cfgs[::3] if quick else cfgs


class KernelSuite(Protocol):
    """What a backend's timing suite provides (`attncc.backends.cpu.kernel_suite` is one): kernels built and
    ready to call, each a case with `.label`, `.job` (what the cost model prices) and `.run()`."""

    def attention_case(self, batch: int, q_heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int,
                       **kw: Any) -> Any: ...

    def matmul_case(self, m: int, n: int, k: int, packed: bool, rng: Any = None) -> Any: ...

    def tiny_case(self, kind: str) -> Any: ...


def _timed(case) -> tuple[KernelSample, Callable[[], None]]:
    return KernelSample(case.label, case.job), case.run


def measure_matmul_peak(build: Callable[[], Any], runs: int = 10) -> dict[str, Any]:
    """Practical fp32 peak: FLOP/s of attncc's own packed-weight TVM matmul, best of `runs` warm calls (it
    is compute-bound, so caches do not matter). numpy's sgemm is slower than this kernel on this machine,
    so a peak taken from numpy alone puts fitted compute factors above 1.

    `build`: makes the matmul case, e.g. `lambda: kernel_suite.matmul_case(2048, 2048, 2048, True)` (the
    backend's suite is passed in: this module imports no backend). Returns {"name", "flops", "source",
    "load", "date", "runs_s"} for `calibrate_host(fp32_probes=...)`.
    """
    case = build()                                       # the suite checks the result against numpy
    _, m, n, k, _ = case.job
    run = case.run
    run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    shape = f"{n}^3" if m == n == k else f"{m}x{n}x{k}"
    return {"name": "tvm-packed-matmul", "flops": 2 * m * n * k / min(times), "source": f"TVM packed matmul {shape} best of {runs}",
            "load": load_average(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs_s": times}


def measure_torch_gemm(dtype: str = "bfloat16", n: int = 1024, runs: int = 5) -> dict[str, Any]:
    """FLOP/s of torch's n³ matmul in `dtype` (numpy has no bfloat16), best of `runs`, for
    `calibrate_host(dtype_probes={dtype: ...})`. Raises ImportError without torch."""
    import torch

    a = torch.randn(n, n).to(getattr(torch, dtype))
    a @ a
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return {"flops": 2 * n ** 3 / min(times), "source": f"torch {n}^3 {dtype} matmul, best of {runs}",
            "load": load_average()}


def tiny_kernel_cases(suite: KernelSuite, rng) -> dict[str, tuple[KernelSample, Callable[[], None]]]:
    """Kernels doing almost nothing; their time (cold, like the others) is the fixed cost of a call:
    "launch" (the smallest possible kernel) and one per kernel class (its code, workspace, two
    parallel stages), each with real head dims so the code is as large as a real kernel's."""
    return {"launch": _timed(suite.attention_case(1, 1, 1, 1, 16, 16, scale=0.25, rng=rng)),
            "attention.prefill": _timed(suite.attention_case(1, 1, 1, 16, 32, 64, scale=0.125, rng=rng)),
            "attention.decode": _timed(suite.attention_case(1, 1, 1, 1, 32, 64, scale=0.125, rng=rng)),
            "matmul": _timed(suite.matmul_case(8, 32, 64, True, rng)),
            # the plan's other kernel classes (norms, elementwise chains, RoPE: "elementwise"; copies: "layout")
            "elementwise": _timed(suite.tiny_case("elementwise")), "layout": _timed(suite.tiny_case("layout"))}


def measure_kernels(suite: KernelSuite, quick: bool = False, rounds: int = 3, reps: int = 5, max_load: float = 1.5,
                    wait_s: float = 60.0, log: Callable[[str], None] | None = print,
                    plans: list | None = None, max_reps: int = 25, short_s: float = 0.02,
                    standalone: bool = True) -> dict[str, Any]:
    """Build and time the kernels of `suite` (the backend's timing suite, e.g. `attncc.backends.cpu.kernel_suite`,
    passed in: this module imports no backend). Returns {"samples", "launch_s" ({"launch" or a
    kernel class: seconds of a tiny kernel}), "loads", "date"}.

    The suite's kernels are timed cold (see the module docstring): per round `reps` calls, and up to `max_reps`
    while a kernel's calls add up to less than `short_s` (a short kernel on a loaded 2-core machine is often
    stretched by a whole scheduler time slice when another process holds one of its two cores).
    `plans`: whole built plans (`suite.plan_cases`, e.g. from `attncc.calibration_plans.plan_kernel_cases`) whose
    kernels are timed as a model call runs them: each round calls the plan `max_reps` times back to back and keeps
    each step's best time. `standalone=False` times only the plans' kernels (and the tiny kernels): on a loaded
    machine their short, many-times-repeated steps still find both cores free, the suite's long cold kernels
    rarely do. Before each round, waits up to `wait_s` for the load average to drop below
    `max_load` (other sessions' tests), then goes on anyway; the loads seen are returned.
    """
    rng = np.random.default_rng(0)
    cases = [_timed(suite.attention_case(**cfg, rng=rng)) for cfg in attention_configs(quick)] if standalone else []
    for m, n, k, packed in (MATMUL[::3] if quick else MATMUL) if standalone else ():
        cases.append(_timed(suite.matmul_case(m, n, k, packed, rng)))
    tiny = tiny_kernel_cases(suite, rng)
    in_plans = [(plan, [KernelSample(c.label, c.job) for c in plan.cases]) for plan in plans or ()]
    flush = np.ones(FLUSH_BYTES // 4, np.float32)
    loads = []
    for r in range(rounds):
        deadline = time.time() + wait_s
        while load_average() > max_load and time.time() < deadline:
            time.sleep(5)
        loads.append(load_average())
        if log:
            log(f"round {r + 1}/{rounds}: load average {loads[-1]:.2f}")
        for sample, run in list(tiny.values()) + cases:
            run()
            spent = 0.0
            for i in range(max_reps):
                if i >= reps and spent > short_s:
                    break
                np.add(flush, 1.0, out=flush)          # evict L3: operands start in DRAM
                t0 = time.perf_counter()
                run()
                sample.runs.append(time.perf_counter() - t0)
                spent += sample.runs[-1]
            sample.measured_s = min(sample.runs)
        for plan, _ in in_plans:
            plan.run()
        for _ in range(max_reps):   # plans interleaved call by call: a burst of load hits every plan a little
            for plan, samples in in_plans:
                times = plan.run()
                for case, sample in zip(plan.cases, samples):
                    sample.runs.append(times[case.step])
        for sample in (s for _, ss in in_plans for s in ss):
            sample.measured_s = min(sample.runs)
    loads.append(load_average())
    samples = [s for s, _ in cases] + [s for _, ss in in_plans for s in ss]
    return {"samples": samples, "launch_s": {k: s.measured_s for k, (s, _) in tiny.items()}, "loads": loads,
            "date": time.strftime("%Y-%m-%d %H:%M")}
