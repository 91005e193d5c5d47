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
from typing import Any, Iterable, Sequence

import numpy as np

from .attention_cost import attention_cost
from .hardware import HardwareSpec, spec_from_dict
from .matmul_cost import count_matmul, matmul_class
from .pricing import OpCost, price

CLASS_FACTORS = {
    "attention.prefill": ("compute", "vector"),
    "attention.decode": ("compute", "memory"),
    "matmul": ("compute", "memory"),
    "matmul.residual": ("compute", "memory"),   # a plan's Linear + residual add (kernel_rows._subclass)
    "matmul.gemv": ("compute", "memory"),       # decode Linear, m <= 16 rows (matmul_cost.matmul_class)
    "elementwise": ("vector", "memory"),
    "elementwise.pow": ("vector", "memory"),     # a plan's x.pow(y): a libm call per element   # a plan's norms, residual/gated/GELU groups, RoPE (row or injective loops)
    "layout": ("memory",),                 # a plan's copies: transposes to/from the attention layout, KV-cache writes
}


MAX_FACTOR = {"memory": 1.5}


def predict(job: tuple, hw: HardwareSpec, dtype: str = "float32") -> OpCost:
    """Price one kernel: ("attention", spec, batch, q_len, kv_len, tiling), ("matmul", m, n, k, tiling) or
    ("row", counted OpCost, kernel class) (a kernel of a built plan, counted by its cost report's row)."""
    if job[0] == "row":
        _, counted, kind = job
        c = copy.copy(counted)
        c.details, c.bytes, c.notes = dict(c.details), dict(c.bytes), list(c.notes)
        return price(c, hw, dtype, kind)
    if job[0] == "attention":
        _, spec, b, ql, kl, tiling = job
        return _cold(attention_cost(spec, b, ql, kl, dtype, tiling, hw), hw)
    if job[0] == "matmul":
        _, m, n, k, tiling = job
        return _cold(price(count_matmul(m, n, k, 1, dtype, hw, tiling), hw, dtype, matmul_class(m)), hw)
    raise ValueError(f"unknown kernel job {job[0]!r}; supported: 'attention', 'matmul', 'row'")


def _cold(cost: OpCost, hw: HardwareSpec) -> OpCost:
    """A kernel called alone with cold caches (the suite's protocol) pays its class's `cold_launch_s`, when the spec
    has one, instead of the in-plan fixed cost."""
    kind = cost.details.get("efficiency", {}).get("kernel_class", "")
    parts = kind.split(".")
    for key in [".".join(parts[:i]) for i in range(len(parts), 0, -1)]:
        cold = hw.efficiency.get("by_op", {}).get(key, {}).get("cold_launch_s")
        if cold is not None:
            cost.time_s += cold - cost.launch_s
            cost.launch_s = cold
            break
    return cost


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


def _terms(cost: OpCost, hw: HardwareSpec, dtype: str = "float32") -> tuple[float, float, float, float]:
    """(matrix seconds, vector seconds, memory seconds, imbalance) of a counted kernel at efficiency 1, as `price`
    combines them: time = imbalance * max(F / compute + V / vector, M / memory) + fixed cost."""
    flops = cost.flops if cost.executed_flops is None else cost.executed_flops
    vflops = cost.vector_flops if cost.executed_vector_flops is None else cost.executed_vector_flops
    mem = max((b / hw.level(lv).bandwidth_bytes_per_s for lv, b in cost.bytes.items()), default=0.0)
    units, tasks = hw.parallel_units, cost.parallel_tasks
    imbalance = -(-tasks // units) * units / tasks if units and tasks else 1.0
    return flops / hw.peak_flops(dtype), vflops / hw.vector_flops(dtype), mem, imbalance


def _fallback(hw: HardwareSpec, resource: str) -> float:
    """The spec-wide factor a class without its own `resource` factor is priced with."""
    eff = hw.efficiency
    if resource == "vector" and "vector" not in eff:
        resource = "compute"
    return float(eff.get(resource, 1.0))


def fit_efficiency(samples: Sequence, hw: HardwareSpec, launch_s: dict[str, float] | None = None,
                   fit_launch: bool = True) -> dict[str, dict[str, float]]:
    """Per-class {compute, vector|memory: fraction of peak, launch_s, cold_launch_s, tiny_kernel_s} minimizing the
    mean |log(predicted / measured)| on `samples`.

    Two fixed costs per call: `cold_launch_s` for a kernel called alone with cold caches (the suite's attention
    and matmul kernels; the measured time of a tiny kernel of the class, `launch_s[cls]`) and `launch_s` for a
    kernel inside a plan call (warm code, thread pool awake: what a model's cost report prices per launch), fitted
    in [0.5 us, the cold one] on the class's plan kernels ("row" jobs) when there are any and `fit_launch`, else
    the tiny kernel's time.
    """
    out: dict[str, dict[str, float]] = {}
    launch_s = launch_s or {}
    base = with_efficiency(hw, {k: v for k, v in hw.efficiency.items() if k != "by_op"})
    for cls, resources in CLASS_FACTORS.items():
        sub = [s for s in samples if s.kind == cls]
        if not sub:
            continue
        tiny = launch_s.get(cls) or launch_s.get(cls.split(".")[0]) or hw.launch_for(cls)
        terms = np.array([_terms(predict(s.job, hw), hw) for s in sub])
        in_plan = np.array([s.job[0] == "row" for s in sub])
        meas = np.array([s.measured_s for s in sub])
        fit_fixed = fit_launch and in_plan.any()
        names = resources + (("launch_s",) if fit_fixed else ())
        # log-space box: compute in [1%, 100%] of peak (vector from 0.1%: a libm call per element, elementwise.pow);
        # memory up to 150% because the spec's DRAM figure is a read+write copy and read-only streams (a decode
        # Linear's weight) run faster
        lo = np.array([np.log(0.001 if r == "vector" else 0.01) for r in resources] + ([np.log(0.5e-6)] if fit_fixed else []))
        # the in-plan fixed cost is at most the cold one (a warm call inside a plan pays no more than the same tiny
        # kernel called alone after a cache flush): without this bound a class with few small kernels trades its
        # memory factor for tens of microseconds of fixed cost that its large kernels then pay too
        hi = np.array([np.log(MAX_FACTOR.get(r, 1.0)) for r in resources] + ([np.log(max(tiny, 1e-6))] if fit_fixed else []))
        center, span = (lo + hi) / 2, (hi - lo) / 2
        best = None
        for _ in range(6):                                   # coarse to fine
            axes = [np.unique(np.clip(c + np.linspace(-w, w, 11), a, b)) for c, w, a, b in zip(center, span, lo, hi)]
            grid = np.exp(np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(names), -1))   # (params, points)
            f = dict(zip(names, grid))
            ec = f.get("compute", _fallback(base, "compute"))
            ev = f.get("vector", f.get("compute", _fallback(base, "vector")))
            em = f.get("memory", _fallback(base, "memory"))
            fixed = np.where(in_plan[:, None], f.get("launch_s", tiny), tiny)
            roof = np.maximum(terms[:, :1] / ec + terms[:, 1:2] / ev, terms[:, 2:3] / em) * terms[:, 3:4]
            err = np.mean(np.abs(np.log((roof + fixed) / meas[:, None])), axis=0)
            j = int(np.argmin(err))
            if best is None or err[j] < best[0]:
                best = (float(err[j]), np.log(grid[:, j]), {r: float(grid[i, j]) for i, r in enumerate(names)})
            center, span = best[1], span / 4
        factors = best[2]
        out[cls] = {r: round(factors[r], 4) for r in resources}
        out[cls]["launch_s"] = float(f"{factors.get('launch_s', tiny):.3g}")
        out[cls]["cold_launch_s"] = float(f"{tiny:.3g}")
        out[cls]["tiny_kernel_s"] = float(f"{tiny:.3g}")
    return out
