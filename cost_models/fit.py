"""Fitting the host spec's efficiency factors to measured kernel times (numpy only, no TVM).

A sample is anything with `.job` (what to price, see `predict`), `.measured_s` and `.kind`
(kernel class). The measurements come from `attncc.calibration.measure_kernels` (which needs
TVM and therefore lives outside cost_models). Each kernel class gets the few factors its
roofline term needs:

    attention.prefill   compute (matrix FLOPs of the visited tiles), vector (softmax work)
    attention.decode    compute (register-poor dot products), memory (streaming the KV cache)
    matmul              compute (register-tiled GEMM), memory (small m streams the weight)
and a fixed cost per call, launch_s (thread-pool wake-up, cold code, workspace and the first
cold memory accesses), fitted no lower than the measured time of a tiny kernel of that class.

Each class is fitted alone (its kernels do not depend on the other classes' factors) by a
coarse-to-fine grid search in log space minimizing the mean |log(predicted / measured)|;
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Iterable, Sequence

import numpy as np

from .attention_cost import attention_cost
from .hardware import HardwareSpec, spec_from_dict
from .matmul_cost import matmul_cost
from .pricing import OpCost, price

CLASS_FACTORS = {
    "attention.prefill": ("compute", "vector"),
    "attention.decode": ("compute", "memory"),
    "matmul": ("compute", "memory"),
}


MAX_FACTOR = {"memory": 1.5}


def predict(job: tuple, hw: HardwareSpec, dtype: str = "float32") -> OpCost:
    """Price one kernel: ("attention", spec, batch, q_len, kv_len, tiling) or ("matmul", m, n, k, tiling)."""
    if job[0] == "attention":
        _, spec, b, ql, kl, tiling = job
        return attention_cost(spec, b, ql, kl, dtype, tiling, hw)
    if job[0] == "matmul":
        _, m, n, k, tiling = job
        return matmul_cost(m, n, k, 1, dtype, hw, tiling)
    raise ValueError(f"unknown kernel job {job[0]!r}; supported: 'attention', 'matmul'")


def with_efficiency(hw: HardwareSpec, efficiency: dict[str, Any], launch_s: float | None = None) -> HardwareSpec:
    """A copy of `hw` with other efficiency factors (and launch overhead)."""
    d = hw.to_dict()
    d["efficiency"] = efficiency
    if launch_s is not None:
        d["launch_overhead_s"] = launch_s
    return spec_from_dict(d, hw.path)


def percent_errors(samples: Sequence, hw: HardwareSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predicted s, measured s, |predicted - measured| / measured) per sample."""
    pred = np.array([predict(s.job, hw).time_s for s in samples])
    meas = np.array([s.measured_s for s in samples])
    return pred, meas, np.abs(pred - meas) / meas


def spearman(a: Iterable[float], b: Iterable[float]) -> float:
    """Spearman rank correlation (no ties expected in timings)."""
    ra, rb = np.argsort(np.argsort(np.asarray(a))), np.argsort(np.argsort(np.asarray(b)))
    return float(np.corrcoef(ra, rb)[0, 1])


def _reprice(costs: Sequence[OpCost], hw: HardwareSpec) -> np.ndarray:
    """Times of already counted kernels under another spec (pricing is cheap, counting is not)."""
    out = []
    for c in costs:
        c = copy.copy(c)
        c.details = dict(c.details)
        out.append(price(c, hw, "float32", c.details.get("kernel", "matmul")).time_s)
    return np.array(out)


def fit_efficiency(samples: Sequence, hw: HardwareSpec, launch_s: dict[str, float] | None = None,
                   fit_launch: bool = False) -> dict[str, dict[str, float]]:
    """Per-class {compute, vector|memory: fraction of peak, launch_s: fixed seconds per call} minimizing
    the mean |log(predicted / measured)| on `samples`.

    `launch_s` (class -> measured seconds of a tiny kernel of that class) bounds the fixed cost
    from below (searched in [tiny, 30 x tiny]): a real kernel called with cold caches pays more
    than the tiny one (measured here: 20-130 us for small attention kernels vs 11-19 us).
    """
    out: dict[str, dict[str, float]] = {}
    launch_s = launch_s or {}
    for cls, resources in CLASS_FACTORS.items():
        sub = [s for s in samples if s.kind == cls]
        if not sub:
            continue
        tiny = launch_s.get(cls, hw.launch_for(cls))
        costs = [predict(s.job, hw) for s in sub]
        meas = np.array([s.measured_s for s in sub])
        names = resources + ("launch_s",)
        # log-space box: compute in [1%, 100%] of peak; memory up to 150% because the spec's DRAM figure is a
        # read+write copy and read-only streams (a decode Linear's weight) run faster; fixed cost >= tiny kernel
        lo = np.array([np.log(0.01)] * len(resources) + [np.log(tiny)])
        hi = np.array([np.log(MAX_FACTOR.get(r, 1.0)) for r in resources] + [np.log((30 if fit_launch else 1) * tiny)])
        center, span = (lo + hi) / 2, (hi - lo) / 2
        best = None
        for _ in range(5):                                   # coarse to fine
            axes = [np.unique(np.clip(c + np.linspace(-w, w, 11), a, b)) for c, w, a, b in zip(center, span, lo, hi)]
            for point in itertools.product(*axes):
                factors = {r: float(np.exp(x)) for r, x in zip(names, point)}
                spec = with_efficiency(hw, {**hw.efficiency, "by_op": {cls: factors}})
                err = float(np.mean(np.abs(np.log(_reprice(costs, spec) / meas))))
                if best is None or err < best[0]:
                    best = (err, np.array(point), factors)
            center, span = best[1], span / 4
        out[cls] = {r: (round(v, 4) if r != "launch_s" else float(f"{v:.3g}")) for r, v in best[2].items()}
        out[cls]["tiny_kernel_s"] = float(f"{tiny:.3g}")
    return out
