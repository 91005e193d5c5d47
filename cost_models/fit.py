"""Fitting the host spec's efficiency factors to measured kernel times (numpy only, no TVM).

A sample is anything with `.job` (what to price, see `predict`), `.measured_s` and `.kind`
(kernel class). The measurements come from `attncc.calibration.measure_kernels` (which needs
TVM and therefore lives outside cost_models). Each kernel class gets the few factors its
roofline term needs:

    attention.prefill   compute (matrix FLOPs of the visited tiles), vector (softmax work)
    attention.decode    compute (register-poor dot products), memory (streaming the KV cache)
    matmul              compute (register-tiled GEMM), memory (small m streams the weight)

Each class is fitted alone (its kernels do not depend on the other classes' factors) by a
coarse-to-fine grid search in log space minimizing the mean |log(predicted / measured)|;
the launch overhead is measured (a tiny kernel), not fitted.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

import numpy as np

from .attention_cost import attention_cost
from .hardware import HardwareSpec, spec_from_dict
from .matmul_cost import matmul_cost
from .pricing import OpCost

CLASS_FACTORS = {
    "attention.prefill": ("compute", "vector"),
    "attention.decode": ("compute", "memory"),
    "matmul": ("compute", "memory"),
}


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


def _log_error(samples: Sequence, hw: HardwareSpec) -> float:
    pred, meas, _ = percent_errors(samples, hw)
    return float(np.mean(np.abs(np.log(pred / meas))))


def fit_efficiency(samples: Sequence, hw: HardwareSpec, launch_s: float) -> dict[str, dict[str, float]]:
    """Per-class factors {class: {resource: fraction of peak}} minimizing mean |log error| on `samples`."""
    out: dict[str, dict[str, float]] = {}
    base = dict(hw.efficiency)
    for cls, resources in CLASS_FACTORS.items():
        sub = [s for s in samples if s.kind == cls]
        if not sub:
            continue
        center, span = np.full(len(resources), -0.9), 2.5  # log-space window around 40% of peak
        best = None
        for _ in range(4):                                   # coarse to fine
            axes = [np.clip(c + np.linspace(-span, span, 15), np.log(0.01), 0.0) for c in center]
            for point in itertools.product(*axes):
                factors = {r: float(np.exp(x)) for r, x in zip(resources, point)}
                eff = {**base, "by_op": {cls: factors}}
                err = _log_error(sub, with_efficiency(hw, eff, launch_s))
                if best is None or err < best[0]:
                    best = (err, np.array(point), factors)
            center, span = best[1], span / 5
        out[cls] = {r: round(v, 4) for r, v in best[2].items()}
    return out
