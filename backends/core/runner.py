"""Runs a Plan inside attncc: `runtime.PlanExecutor` (TVM runtime + numpy) plus the numpy-reference steps,
per-step profiling and torch/numpy outputs.

No torch import: inputs come in through DLPack (torch tensors included, zero-copy when contiguous and
aligned), outputs are TVM tensors handed out as zero-copy numpy arrays, or as torch tensors through
DLPack when the caller passed torch tensors (torch is then already imported).
"""
from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import numpy as np

from .errors import LoweringError
from .plan import Plan
from .runtime import PlanExecutor, create_view


def to_numpy(t) -> np.ndarray:
    """A zero-copy numpy view of a TVM tensor (bfloat16 through ml_dtypes)."""
    if t.dtype == "bfloat16":
        import ml_dtypes

        return np.from_dlpack(create_view(t, t.shape, "uint16")).view(ml_dtypes.bfloat16)
    return np.from_dlpack(t)


def to_torch(t):
    """A zero-copy torch tensor over a TVM tensor."""
    import torch

    return torch.from_dlpack(t)


class PlanRunner(PlanExecutor):
    """A Plan bound to its compiled library, constants and numpy-reference callables."""

    def __init__(self, plan: Plan, lib, constants: dict[str, np.ndarray], references: dict[int, Callable]):
        super().__init__(json.loads(plan.to_json()), lib, constants)
        self.plan = plan   # the Plan object (the executor reads its JSON form, self.spec)
        self.references = references

    def __call__(self, inputs: Sequence[Any], as_torch: bool = False) -> list[Any]:
        outs = self.run(inputs)
        return [to_torch(t) if as_torch else to_numpy(t) for t in outs]

    def profile(self, inputs: Sequence[Any], repeats: int = 20) -> list[dict]:
        """Best-of-`repeats` wall time of every plan step (ms) on `inputs`, in plan order.

        Each entry: {"step", "kind", "func", "node", "op", "ms"}. Steps run back to back as in a
        normal call, so thread-pool wake-ups between kernels are included in each step's time.
        """
        best: list[float] = [float("inf")] * len(self.steps)
        for _ in range(repeats):
            times: list[float] = []
            self.run(inputs, times)
            best = [min(b, t) for b, t in zip(best, times)]
        return [{"step": i, "kind": s["kind"], "func": s.get("func"), "node": s.get("node"), "op": s.get("op"),
                 "ms": best[i] * 1e3} for i, s in enumerate(self.steps)]

    def step_error(self, step: dict, cause: BaseException) -> Exception:
        return LoweringError(step.get("node", "?"), step.get("op", "?"), "running its kernel failed", cause)

    def run_step(self, i: int, step: dict, env: dict, dims: dict) -> None:
        if step["kind"] != "reference":
            return super().run_step(i, step, env, dims)
        arrays = [to_numpy(env[n]) for n in step["inputs"]]
        for n, a in zip(step["outputs"], self.references[i](arrays)):
            dst = env[n]
            a = np.ascontiguousarray(np.asarray(a).reshape(tuple(dst.shape)))
            to_numpy(dst)[...] = a
