"""GPU schedules for the core's kernel classes: dlight's GPU rules, replayed onto the core's schedule.

The core hands a plugin schedule `fn(sch, root)` a `tvm.s_tir.Schedule` to mutate; dlight rules return a
fresh schedule, so the chosen rule's trace is replayed onto `sch`. Every rule binds blockIdx/threadIdx and
accepts symbolic extents (shape-generic builds)."""
from __future__ import annotations

from functools import lru_cache

import tvm
from tvm.s_tir import dlight as dl

from .target import cuda_target


class CudaScheduleError(RuntimeError):
    """No GPU rule applied to a kernel (the core then tries the generic schedule, with a note)."""


@lru_cache(maxsize=None)
def _target(arch: str) -> tvm.target.Target:
    return tvm.target.Target(cuda_target({"arch": arch}))


def _rules(kind: str) -> list:
    gpu = dl.gpu
    if kind == "injective":
        return [gpu.Fallback()]
    if kind == "rows":   # softmax / norms / reductions: one row per block, threads across the row
        return [gpu.RMSNorm(), gpu.GeneralReduction(), gpu.Reduction(), gpu.Fallback()]
    if kind == "matmul":
        return [gpu.Matmul(), gpu.GEMV(), gpu.LowBatchGEMV(), gpu.Reduction(), gpu.GeneralReduction(), gpu.Fallback()]
    return [gpu.Matmul(), gpu.GEMV(), gpu.Reduction(), gpu.GeneralReduction(), gpu.Fallback()]


def apply_rules(sch, kind: str, arch: str = "sm_90a") -> str:
    """Apply the first dlight rule that accepts the function; returns the rule's class name."""
    func = sch.mod["main"]
    target = _target(arch)
    errors = []
    for rule in _rules(kind):
        try:
            with target:
                got = rule.apply(func, target, False)
        except Exception as e:  # noqa: BLE001 - a rule that does not fit this kernel: try the next one
            errors.append(f"{type(rule).__name__}: {type(e).__name__}")
            continue
        if got is None:
            continue
        got = got[0] if isinstance(got, list) else got
        got.trace.apply_to_schedule(sch, remove_postproc=False)
        return type(rule).__name__
    raise CudaScheduleError(f"no GPU schedule rule applies to this {kind} kernel ({'; '.join(errors) or 'none matched'})")


def make_schedule(kind: str, arch_of):
    """fn(sch, root) applying the `kind` rules for the arch `arch_of()` names."""
    return lambda sch, root: apply_rules(sch, kind, arch_of())
