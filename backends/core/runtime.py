"""Runs a lowered plan with TVM's runtime and numpy only: no attncc, no torch, no TVM compiler.

This file is self-contained on purpose: `export` copies it into the exported folder as
`attncc_runtime.py`, next to the one kernel library, the plan and the constants, so the folder runs
in an environment holding only apache-tvm(-ffi) and numpy (`TVM_USE_RUNTIME_LIB=1` keeps the compiler
library unloaded). Inside attncc, `runner.PlanRunner` extends `PlanExecutor`.

A plan (JSON) is a straight-line program over named values: inputs, outputs, intermediate buffers,
constants and views (another value's memory under another shape/dtype); each step calls one function
of the library. Shapes are ints or symbolic dim texts ("past+1"), evaluated per call from the dims
read off the input shapes (`plan["dims"]`: name -> [input index, axis]) with `plan["dim_polys"]`
(text -> [[coefficient, [symbol, ...]], ...]).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np


def _import_tvm_without_torch():
    """`import tvm` keeping torch out of the process: tvm-ffi 0.1.x imports torch eagerly when it is installed
    (its workaround for a Windows symbol clash), which costs this runtime 0.6-3 s and hundreds of MB it never
    uses. A torch imported before stays; one imported later works (tensors still pass through DLPack)."""
    import sys

    if "torch" in sys.modules:
        import tvm
        return tvm
    sys.modules["torch"] = None     # makes `import torch` raise ImportError, which tvm-ffi catches
    try:
        import tvm
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]
    return tvm


tvm = _import_tvm_without_torch()

DIM_ARG = "#dim"   # a call argument that passes a dim's value (int32), not a tensor


class PlanError(RuntimeError):
    """A step of the plan failed; names the IR node and op it came from."""


def _static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def size_thread_pool(threads: int | None = None) -> int:
    """Give TVM's CPU pool `threads` workers (default: every core this process may use; TVM alone takes half).

    Must run before the pool first starts. Returns the pool's size."""
    count = tvm.get_global_func("runtime.NumThreads")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    want = int(os.environ.get("TVM_NUM_THREADS") or threads or len(cpus))
    tvm.get_global_func("runtime.config_threadpool")(2, want, [str(c) for c in cpus])  # 2: share all cores
    return int(count())


class PlanExecutor:
    """A plan bound to its kernel library and constants; `run(inputs)` returns TVM tensors.

    Inputs: anything exporting DLPack (numpy arrays, torch tensors, TVM tensors), zero-copy when contiguous,
    64-byte aligned and of the declared dtype, else copied once.
    """

    def __init__(self, plan: dict, lib, constants: dict[str, np.ndarray], device=None):
        self.spec, self.lib = plan, lib
        self.dev = device or tvm.cpu()
        self.values, self.steps = plan["values"], plan["steps"]
        self._polys = {k: [(c, tuple(s)) for c, s in v] for k, v in plan.get("dim_polys", {}).items()}
        self._funcs = {s["func"]: lib[s["func"]] for s in self.steps if s.get("func")}
        self._persistent: dict[str, Any] = {}
        for name, info in self.values.items():
            if info["storage"] == "const" and name in constants:
                self._persistent[name] = tvm.runtime.tensor(np.ascontiguousarray(constants[name]), self.dev)
            elif info["storage"] == "buffer" and _static(info["shape"]):
                self._persistent[name] = tvm.runtime.empty(info["shape"], info["dtype"], self.dev)
        for name, info in self.values.items():
            if info["storage"] == "view" and info["base"] in self._persistent and _static(info["shape"]):
                self._persistent[name] = self._view(self._persistent, info["base"], info["shape"], info["dtype"])
        # arguments over constants/buffers never change: build their views once, not per call
        self._fixed = {i: [self._view(self._persistent, *a) if a[0] in self._persistent and _static(a[1]) else None
                           for a in self._tensor_args(s)] for i, s in enumerate(self.steps) if s.get("func")}
        self._dyn: tuple[tuple, dict] = ((), {})
        self._staging: dict[str, Any] = {}

    # ---- dims ------------------------------------------------------------------------------------
    def dim(self, d, dims: dict[str, int]) -> int:
        if isinstance(d, int):
            return d
        total = 0
        for coeff, syms in self._polys[d]:
            for s in syms:
                coeff *= dims[s]
            total += coeff
        return total

    def shape(self, shape, dims: dict[str, int]) -> list[int]:
        return [d if isinstance(d, int) else self.dim(d, dims) for d in shape]

    def bind_dims(self, inputs: Sequence[Any]) -> dict[str, int]:
        """The value of every symbolic dim, read from the input shapes."""
        return {name: int(inputs[i].shape[axis]) for name, (i, axis) in self.spec.get("dims", {}).items()}

    # ---- values ----------------------------------------------------------------------------------
    def _view(self, env: dict, name: str, shape: list, dtype: str, dims: dict | None = None):
        t = env[name]
        if dims is not None:
            shape = self.shape(shape, dims)
        if list(t.shape) == list(shape) and t.dtype == dtype:
            return t
        return t._create_view(tuple(shape), dtype)

    @staticmethod
    def _tensor_args(step: dict) -> list:
        if step["kind"] == "attention":
            return [step[k] for k in ("q", "k", "v", "mask", "out") if step.get(k)]
        return [a for a in step["args"] if a[0] != DIM_ARG]

    def to_tensor(self, x: Any, name: str, dtype: str):
        """A TVM tensor over `x` (zero-copy when TVM accepts its memory as is)."""
        if isinstance(x, np.ndarray):
            if x.dtype.name == dtype != "bfloat16" and x.flags.c_contiguous and x.ctypes.data % 64 == 0:  # numpy has no bf16 DLPack
                return tvm.runtime.from_dlpack(x)
            # misaligned (numpy aligns to 16 bytes), strided or another dtype: one copy into a staging
            # tensor kept for this input (no allocation per call; outputs never alias it)
            stage = self._staging.get(name)
            if stage is None or tuple(stage.shape) != x.shape:
                stage = self._staging[name] = tvm.runtime.empty(x.shape, dtype, self.dev)
            stage.copyfrom(x if x.dtype.name == dtype else x.astype(dtype))
            return stage
        if isinstance(x, tvm.runtime.Tensor) and x.dtype == dtype:
            return x
        if hasattr(x, "__dlpack__") and str(x.dtype).replace("torch.", "") == dtype:
            try:
                return tvm.runtime.from_dlpack(x)
            except Exception:  # noqa: BLE001 - strided or misaligned memory: copy below
                pass
        a = np.asarray(x.numpy() if isinstance(x, tvm.runtime.Tensor) else x)
        if str(a.dtype) != dtype:
            a = a.astype(dtype)
        return tvm.runtime.tensor(np.ascontiguousarray(a), self.dev)

    def _buffers_for(self, dims: dict[str, int]) -> dict[str, Any]:
        """Intermediates with symbolic shapes, allocated for these dims (kept while the dims repeat)."""
        key = tuple(sorted(dims.items()))
        if self._dyn[0] != key:
            self._dyn = (key, {name: tvm.runtime.empty(self.shape(info["shape"], dims), info["dtype"], self.dev)
                               for name, info in self.values.items()
                               if info["storage"] == "buffer" and not _static(info["shape"])})
        return self._dyn[1]

    # ---- running ---------------------------------------------------------------------------------
    def run(self, inputs: Sequence[Any], times: list | None = None) -> list:
        """Execute every step; returns the outputs as TVM tensors (fresh memory per call)."""
        plan = self.spec
        if len(inputs) != len(plan["inputs"]):
            raise ValueError(f"expected {len(plan['inputs'])} inputs ({', '.join(plan['inputs'])}), got {len(inputs)}")
        dims = self.bind_dims(inputs) if plan.get("dims") else {}
        env: dict[str, Any] = dict(self._persistent)
        for name, x in zip(plan["inputs"], inputs):
            info = self.values[name]
            t = self.to_tensor(x, name, info["dtype"])
            want = self.shape(info["shape"], dims)
            if list(t.shape) != want:
                raise ValueError(f"input '{name}' has shape {tuple(t.shape)}; this plan was built for "
                                 f"{tuple(info['shape'])}" + (f" = {tuple(want)} here" if dims else ""))
            env[name] = t
        for name, info in self.values.items():
            if info["storage"] == "output":
                env[name] = tvm.runtime.empty(self.shape(info["shape"], dims), info["dtype"], self.dev)
        if dims:
            env.update(self._buffers_for(dims))
        for name, info in self.values.items():
            if info["storage"] == "view" and info["base"] in env and name not in env:
                env[name] = self._view(env, info["base"], info["shape"], info["dtype"], dims)
        clock = __import__("time").perf_counter if times is not None else None
        for i, step in enumerate(self.steps):
            start = clock() if clock else 0.0
            try:
                self.run_step(i, step, env, dims)
            except PlanError:
                raise
            except Exception as e:  # a kernel failure: name the node, keep the cause chained
                raise self.step_error(step, e) from e
            if clock:
                times.append(clock() - start)
        outs = []
        aliases = plan.get("aliases", {})
        for name in plan["outputs"]:
            t = env[name]
            if name in aliases:   # written in place into an input's memory: that input, not a copy
                outs.append(env[aliases[name]])
                continue
            if self.values[name]["storage"] != "output":  # an input, constant, view or reused buffer: a private copy
                fresh = tvm.runtime.empty(t.shape, t.dtype, self.dev)
                fresh.copyfrom(t)
                t = fresh
            outs.append(t)
        return outs

    def step_error(self, step: dict, cause: BaseException) -> Exception:
        return PlanError(f"node '{step.get('node', '?')}' ({step.get('op', '?')}): running its kernel failed: "
                         f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}")

    def run_step(self, i: int, step: dict, env: dict, dims: dict) -> None:
        kind = step["kind"]
        if kind in ("call", "attention"):
            fixed = self._fixed[i]
            args = [f if f is not None else self._view(env, *a, dims)
                    for f, a in zip(fixed, self._tensor_args(step))]
            if kind == "call":
                args += [self.dim(a[1], dims) for a in step["args"] if a[0] == DIM_ARG]
            self._funcs[step["func"]](*args)
        elif kind == "reference":
            raise PlanError(f"node '{step['node']}' runs attncc's numpy reference (no generated kernel): "
                            "this plan needs attncc to run")
        else:
            raise PlanError(f"unknown plan step kind {kind!r}")


def _load_entry(folder: str, entry: dict, device) -> PlanExecutor:
    import json

    with open(os.path.join(folder, entry["plan"])) as f:
        plan = json.load(f)
    lib = tvm.runtime.load_module(os.path.join(folder, entry["library"])) if entry.get("library") else None
    constants = {}
    with np.load(os.path.join(folder, entry["constants"])) as data:
        for name in data.files:
            arr = data[name]
            if plan["values"][name]["dtype"] == "bfloat16":  # stored as its uint16 bits
                import ml_dtypes

                arr = arr.view(ml_dtypes.bfloat16)
            constants[name] = arr
    return PlanExecutor(plan, lib, constants, device)


class FolderModel:
    """An exported folder: one executor per build (a shape-generic build serves every size)."""

    def __init__(self, folder: str, device=None):
        import json

        with open(os.path.join(folder, "plans.json")) as f:
            self.index = json.load(f)
        self.inputs, self.outputs = self.index["inputs"], self.index["outputs"]
        self._entries = [(e["shapes"], _load_entry(folder, e, device)) for e in self.index["plans"]]

    def run(self, inputs: Sequence[Any]) -> list:
        """Outputs (TVM tensors; `.numpy()` or np.from_dlpack to read them) for these inputs."""
        shapes = [list(x.shape) for x in inputs]
        for want, executor in self._entries:
            if want == "generic" or want == shapes:
                return executor.run(inputs)
        raise ValueError(f"no build for input shapes {shapes}; builds: {[w for w, _ in self._entries]}")


def load_folder(folder: str, device=None) -> FolderModel:
    """The model in an exported folder (plans.json, plan_<i>.json, kernels_<i>.so, constants_<i>.npz)."""
    return FolderModel(folder, device)
