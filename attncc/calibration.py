"""Measured kernel times for fitting the host cost model: attncc's own TVM kernels, timed honestly.

`measure_kernels()` builds the CPU backend's attention kernels (flash prefill, split-KV decode;
MHA/GQA/MQA, causal, sliding window, softcap) and scheduled matmuls (packed weights as a Linear
uses them, and unpacked activation products), times each one and returns `KernelSample`s that
`attncc.cost_models.fit` turns into efficiency factors. It lives here, not in cost_models,
because it needs TVM.

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
from typing import Any, Callable

import numpy as np

from attncc.errors import AttnccError
from attncc.ir.ops.attention import Tiling
from attncc.ir.ops.attention_spec import AttentionSpec, MaskSpec

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
        """Kernel class: 'attention.prefill', 'attention.decode' or 'matmul'."""
        if self.job[0] == "attention":
            return "attention.decode" if self.job[5].num_splits else "attention.prefill"
        return "matmul"


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


def attention_configs(quick: bool = False) -> list:
    """AttentionKernelConfigs of the suite (a third of them with `quick`)."""
    from attncc.backends.cpu.attention import AttentionKernelConfig as C

    cfgs = [C(b, hq, hkv, n, n, d, d, 1 / math.sqrt(d), causal=c, window_left=w, softcap=cap)
            for b, hq, hkv, n, d, c, w, cap in PREFILL]
    cfgs += [C(b, hq, hkv, 1, kv, d, d, 1 / math.sqrt(d), causal=True) for b, hq, hkv, kv, d in DECODE]
    return cfgs[::3] if quick else cfgs


def kernel_tiling(kern) -> Tiling:
    """The tiles the compiled kernel really uses (its schedule), as the cost model's Tiling."""
    cfg, s = kern.cfg, kern.schedule
    if kern.kind == "decode":
        return Tiling(q_block=cfg.group * cfg.q_len, kv_block=s.kv_block, num_splits=s.num_splits)
    return Tiling(q_block=s.q_block, kv_block=s.kv_block)


def _attention_case(cfg, rng) -> tuple[KernelSample, Callable[[], None]]:
    from attncc.backends.cpu.attention import build_attention_kernel

    kern = build_attention_kernel(cfg)
    q = rng.standard_normal((cfg.batch, cfg.q_heads, cfg.q_len, cfg.head_dim), dtype=np.float32)
    k = rng.standard_normal((cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.head_dim), dtype=np.float32)
    v = rng.standard_normal((cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.v_head_dim), dtype=np.float32)
    args, _ = kern.prepare(q, k, v)          # aligned copies made once, outside the timing
    fn = kern.mod["attention"]
    mask = MaskSpec(causal=cfg.causal, alignment=cfg.alignment, window_left=cfg.window_left,
                    window_right=cfg.window_right)
    spec = AttentionSpec(cfg.q_heads, cfg.kv_heads, cfg.head_dim, cfg.v_head_dim, scale=cfg.scale,
                         softcap=cfg.softcap, mask=mask)
    label = (f"attn-{kern.kind} B{cfg.batch} H{cfg.q_heads}/{cfg.kv_heads} q{cfg.q_len} kv{cfg.kv_len} d{cfg.head_dim}"
             + (" causal" if cfg.causal and cfg.q_len > 1 else "") + (f" win{cfg.window_left}" if cfg.window_left else "")
             + (" softcap" if cfg.softcap else ""))
    job = ("attention", spec, cfg.batch, cfg.q_len, cfg.kv_len, kernel_tiling(kern))
    return KernelSample(label, job), lambda: fn(*args)


def _matmul_case(m: int, n: int, k: int, packed: bool, rng) -> tuple[KernelSample, Callable[[], None]]:
    import tvm
    from tvm import te

    from attncc.backends.cpu.attention import default_target
    from attncc.backends.cpu.matmul import (PANEL, TILE_ROWS, _largest_divisor, matmul_compute, pack_weight,
                                            packed_shape, schedule_matmul)

    a_np = rng.standard_normal((1, m, k), dtype=np.float32)
    w_np = rng.standard_normal((k, n), dtype=np.float32)
    a = te.placeholder((1, m, k), "float32", name="A")
    b = te.placeholder(packed_shape(k, n) if packed else (1, k, n), "float32", name="B")
    acc = matmul_compute(a, b, n, packed=packed, name="acc")
    out = te.compute(acc.shape, lambda *i: acc(*i), name="C")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b, out]))
    schedule_matmul(sch, "C", "acc")
    fn = tvm.compile(sch.mod, target=default_target())["main"]
    b_host = pack_weight(w_np) if packed else w_np[None]   # weight packing: load time, not timed
    ta, tb = tvm.runtime.tensor(a_np), tvm.runtime.tensor(b_host)
    tc = tvm.runtime.tensor(np.empty((1, m, n), np.float32))
    fn(ta, tb, tc)
    np.testing.assert_allclose(tc.numpy()[0], a_np[0] @ w_np, rtol=1e-3, atol=1e-2)
    # the register tile schedule_matmul picks (exact divisors of M and N)
    tiles = Tiling(q_block=_largest_divisor(m, range(TILE_ROWS, 0, -1)),
                   kv_block=_largest_divisor(n, (PANEL, 16, 8) + tuple(range(PANEL - 1, 0, -1))))
    label = f"matmul {'linear(packed W)' if packed else 'unpacked'} {m}x{n}x{k}"
    return KernelSample(label, ("matmul", m, n, k, tiles)), lambda: fn(ta, tb, tc)


def measure_matmul_peak(n: int = 2048, runs: int = 10) -> dict[str, Any]:
    """Practical fp32 peak: FLOP/s of attncc's own packed-weight TVM matmul (an n x n x n Linear), best
    of `runs` warm calls (it is compute-bound, so caches do not matter). numpy's sgemm is slower than
    this kernel on this machine, so a peak taken from numpy alone puts fitted compute factors above 1.

    Returns {"name", "flops", "source", "load", "date", "runs_s"} for `calibrate_host(fp32_probes=...)`.
    """
    _, run = _matmul_case(n, n, n, True, np.random.default_rng(0))   # checks the result against numpy
    run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"name": "tvm-packed-matmul", "flops": 2 * n ** 3 / min(times), "source": f"TVM packed matmul {n}^3 best of {runs}",
            "load": load_average(), "date": time.strftime("%Y-%m-%d %H:%M"), "runs_s": times}


def tiny_kernel_cases(rng) -> dict[str, tuple[KernelSample, Callable[[], None]]]:
    """Kernels doing almost nothing; their time (cold, like the others) is the fixed cost of a call:
    "launch" (the smallest possible kernel) and one per kernel class (its code, workspace, two
    parallel stages), each with real head dims so the code is as large as a real kernel's."""
    from attncc.backends.cpu.attention import AttentionKernelConfig as C

    return {"launch": _attention_case(C(1, 1, 1, 1, 16, 16, 16, 0.25), rng),
            "attention.prefill": _attention_case(C(1, 1, 1, 16, 32, 64, 64, 0.125), rng),
            "attention.decode": _attention_case(C(1, 1, 1, 1, 32, 64, 64, 0.125), rng),
            "matmul": _matmul_case(8, 32, 64, True, rng)}


def measure_kernels(quick: bool = False, rounds: int = 3, reps: int = 5, max_load: float = 1.5,
                    wait_s: float = 60.0, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Build and time the suite. Returns {"samples", "launch_s" ({"launch" or a
    kernel class: seconds of a tiny kernel}), "loads", "date"}.

    Before each round, waits up to `wait_s` for the load average to drop below `max_load`
    (other sessions' tests), then goes on anyway; the loads seen are returned.
    """
    rng = np.random.default_rng(0)
    cases = [_attention_case(cfg, rng) for cfg in attention_configs(quick)]
    for m, n, k, packed in (MATMUL[::3] if quick else MATMUL):
        cases.append(_matmul_case(m, n, k, packed, rng))
    tiny = tiny_kernel_cases(rng)
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
            for _ in range(reps):
                np.add(flush, 1.0, out=flush)          # evict L3: operands start in DRAM
                t0 = time.perf_counter()
                run()
                sample.runs.append(time.perf_counter() - t0)
            sample.measured_s = min(sample.runs)
    loads.append(load_average())
    return {"samples": [s for s, _ in cases], "launch_s": {k: s.measured_s for k, (s, _) in tiny.items()}, "loads": loads,
            "date": time.strftime("%Y-%m-%d %H:%M")}
