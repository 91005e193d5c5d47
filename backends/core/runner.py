"""Runs a Plan: binds inputs (zero-copy through DLPack), calls the compiled functions in order.

Outputs are allocated as torch tensors (64-byte aligned, so TVM accepts them without a copy)
and returned as torch tensors or zero-copy numpy views of them.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
import tvm

from .errors import LoweringError
from .plan import Plan
from .symbolic import DimEvaluator

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "float64": torch.float64, "int64": torch.int64, "int32": torch.int32, "int8": torch.int8,
                "uint8": torch.uint8, "bool": torch.bool}
ALIGN = 64


def to_torch(x: Any, dtype: str) -> torch.Tensor:
    """A contiguous, 64-byte aligned torch tensor of `dtype` holding x (no copy when x already is one)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        a = np.asarray(x)
        if "bfloat16" in str(a.dtype):
            t = torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.ascontiguousarray(a))
    want = TORCH_DTYPES[dtype]
    if t.dtype != want:
        t = t.to(want)
    if t.device.type != "cpu":
        t = t.cpu()
    if not t.is_contiguous() or t.data_ptr() % ALIGN:
        fresh = torch.empty(t.shape, dtype=t.dtype)
        copy_single_thread(fresh, t)
        t = fresh
    return t


def copy_single_thread(dst: torch.Tensor, src: torch.Tensor) -> None:
    """dst[...] = src through numpy. torch's copy_ wakes its OpenMP pool, whose threads then
    spin for milliseconds and take a core from the TVM kernels that follow (measured: the next
    two kernels of a Llama block ran 2-5x slower)."""
    try:
        np.copyto(torch_to_numpy(dst), torch_to_numpy(src))
    except (TypeError, RuntimeError):  # a dtype numpy cannot view: torch's copy is still correct
        dst.copy_(src)


def torch_to_numpy(t: torch.Tensor) -> np.ndarray:
    """Zero-copy numpy view of a CPU torch tensor (bfloat16 through ml_dtypes)."""
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


class PlanRunner:
    """A Plan bound to its compiled library, constants and attention kernels; call with a list of arrays.

    Shape-generic plans: values whose shapes hold symbolic dims are allocated per call (buffers are kept
    while the dims stay the same), every kernel reads its sizes from its arguments.
    """

    def __init__(self, plan: Plan, lib, constants: dict[str, np.ndarray],
                 kernels: dict[int, Callable], references: dict[int, Callable]):
        self.plan = plan
        self.lib = lib
        self.kernels = kernels
        self.references = references
        self._eval = DimEvaluator()
        self._funcs = {s["func"]: lib[s["func"]] for s in plan.steps if s["kind"] == "call"}
        self._persistent: dict[str, Any] = {}
        self._keepalive: list[torch.Tensor] = []
        for name, info in plan.values.items():
            if info["storage"] == "const" and name in constants:
                t = to_torch(constants[name], info["dtype"])
                self._keepalive.append(t)
                self._persistent[name] = tvm.runtime.from_dlpack(t)
            elif info["storage"] == "buffer" and _static(info["shape"]):
                t = torch.empty(info["shape"], dtype=TORCH_DTYPES[info["dtype"]])
                self._keepalive.append(t)
                self._persistent[name] = tvm.runtime.from_dlpack(t)
        for name, info in plan.values.items():
            if info["storage"] == "view" and info["base"] in self._persistent and _static(info["shape"]):
                self._persistent[name] = self._view(self._persistent, info["base"], info["shape"], info["dtype"])
        # call arguments over constants/buffers never change: build their views once, not per call
        # (Python-side view creation was ~1/3 of the runner's per-call overhead)
        self._fixed_args: dict[int, list] = {
            i: [self._view(self._persistent, *a) if a[0] in self._persistent and _static(a[1]) else None
                for a in s["args"] if a[0] != Plan.DIM]
            for i, s in enumerate(plan.steps) if s["kind"] == "call"}
        self._dyn_buffers: tuple[tuple, dict] = ((), {})   # (dims signature, name -> tvm tensor)

    def _view(self, env: dict, name: str, shape: list, dtype: str, dims: dict | None = None):
        t = env[name]
        if dims is not None:
            shape = list(self._eval.shape(shape, dims))
        if list(t.shape) == shape and t.dtype == dtype:
            return t
        return t._create_view(tuple(shape), dtype)

    def bind_dims(self, inputs: Sequence[Any]) -> dict[str, int]:
        """The value of every symbolic dim of a generic plan, read from the input shapes."""
        return {name: int(inputs[i].shape[axis]) for name, (i, axis) in self.plan.dims.items()}

    def __call__(self, inputs: Sequence[Any], as_torch: bool = False) -> list[Any]:
        return self._execute(inputs, as_torch, None)

    def profile(self, inputs: Sequence[Any], repeats: int = 20) -> list[dict]:
        """Best-of-`repeats` wall time of every plan step (ms) on `inputs`, in plan order.

        Each entry: {"step", "kind", "func", "node", "op", "ms"}. Steps run back to back as in a
        normal call, so thread-pool wake-ups between kernels are included in each step's time.
        """
        best: list[float] = [float("inf")] * len(self.plan.steps)
        for _ in range(repeats):
            times: list[float] = []
            self._execute(inputs, True, times)
            best = [min(b, t) for b, t in zip(best, times)]
        return [{"step": i, "kind": s["kind"], "func": s.get("func"), "node": s.get("node"), "op": s.get("op"),
                 "ms": best[i] * 1e3} for i, s in enumerate(self.plan.steps)]

    def _execute(self, inputs: Sequence[Any], as_torch: bool, times: list[float] | None) -> list[Any]:
        plan = self.plan
        env: dict[str, Any] = dict(self._persistent)
        held: dict[str, torch.Tensor] = {}
        dims = self.bind_dims(inputs) if plan.generic else {}
        for name, x in zip(plan.inputs, inputs):
            info = plan.values[name]
            t = to_torch(x, info["dtype"])
            want = list(self._eval.shape(info["shape"], dims))
            if list(t.shape) != want:
                raise ValueError(f"input '{name}' has shape {tuple(t.shape)}; this plan was built for "
                                 f"{tuple(info['shape'])}" + (f" = {tuple(want)} here" if plan.generic else ""))
            held[name] = t
            env[name] = tvm.runtime.from_dlpack(t)
        for name, info in plan.values.items():
            if info["storage"] == "output":
                t = torch.empty(self._eval.shape(info["shape"], dims), dtype=TORCH_DTYPES[info["dtype"]])
                held[name] = t
                env[name] = tvm.runtime.from_dlpack(t)
        if plan.generic:
            env.update(self._buffers_for(dims))
        for name, info in plan.values.items():
            if info["storage"] == "view" and info["base"] in env and name not in env:
                env[name] = self._view(env, info["base"], info["shape"], info["dtype"], dims)
        for i, step in enumerate(plan.steps):
            try:
                if times is not None:
                    t0 = time.perf_counter()
                    self._run_step(i, step, env, dims)
                    times.append(time.perf_counter() - t0)
                else:
                    self._run_step(i, step, env, dims)
            except LoweringError:
                raise
            except Exception as e:  # a TVM or kernel failure: name the node, keep the cause chained
                raise LoweringError(step.get("node", "?"), step.get("op", "?"), "running its kernel failed", e) from e
        outs = []
        for name in plan.outputs:
            info = plan.values[name]
            if info["storage"] == "output":
                t = held[name]
            else:  # an input, constant, view or reused buffer: hand out a private copy
                src = torch.from_dlpack(env[name])
                t = torch.empty(src.shape, dtype=src.dtype)
                copy_single_thread(t, src)
            outs.append(t if as_torch else torch_to_numpy(t))
        return outs

    def _buffers_for(self, dims: dict[str, int]) -> dict[str, Any]:
        """Intermediate buffers with symbolic shapes, allocated for these dims (reused while they repeat)."""
        key = tuple(sorted(dims.items()))
        if self._dyn_buffers[0] != key:
            bufs = {}
            for name, info in self.plan.values.items():
                if info["storage"] == "buffer" and not _static(info["shape"]):
                    t = torch.empty(self._eval.shape(info["shape"], dims), dtype=TORCH_DTYPES[info["dtype"]])
                    bufs[name] = (t, tvm.runtime.from_dlpack(t))
            self._dyn_buffers = (key, bufs)
        return {name: tv for name, (_, tv) in self._dyn_buffers[1].items()}

    def _run_step(self, i: int, step: dict, env: dict, dims: dict) -> None:
        kind = step["kind"]
        if kind == "call":
            args = [f if f is not None else self._view(env, n, s, d, dims)
                    for f, (n, s, d) in zip(self._fixed_args[i], step["args"])]
            args += [self._eval(s, dims) for n, s, _ in step["args"][len(args):]]  # trailing dim scalars
            self._funcs[step["func"]](*args)
        elif kind == "attention":
            q, k, v = (torch.from_dlpack(self._view(env, *step[x], dims)) for x in ("q", "k", "v"))
            mask = torch.from_dlpack(self._view(env, *step["mask"], dims)) if step.get("mask") else None
            out = torch.from_dlpack(self._view(env, *step["out"], dims))
            self.kernels[i](q, k, v, mask=mask, out=out)
        elif kind == "reference":
            arrays = [torch_to_numpy(torch.from_dlpack(env[n])) for n in step["inputs"]]
            results = self.references[i](arrays)
            for n, a in zip(step["outputs"], results):
                dst = torch.from_dlpack(env[n])
                dst.copy_(to_torch(a, self.plan.values[n]["dtype"]).reshape(dst.shape))
        else:
            raise ValueError(f"unknown plan step kind {kind!r}")
