"""Runs a mobile-gpu plan with pyopencl: every kernel launched on the first OpenCL device, host arrays numpy.

TVM's wheel has no OpenCL runtime, so this executor replaces `core/runtime.PlanExecutor` for this target:
values live in `cl.Buffer`s (views share their base's buffer: a view is the same memory under another
shape), each plan call replays its function's launches (`compile.OpenClLibrary.launches`: kernel,
which tensors, work-group counts and sizes), numpy-reference steps copy through the host. No torch import:
torch outputs are made only when the caller passed torch tensors (torch is then already imported).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import numpy as np

from ...core.errors import LoweringError
from .compile import OpenClLibrary

DIM_ARG = "#dim"


class NoOpenClDeviceError(RuntimeError):
    """No OpenCL platform/device in this process (or pyopencl is missing)."""


_CONTEXT: dict[str, Any] = {}


def opencl_queue():
    """(context, queue, device) on the first OpenCL device found; a clear error when there is none."""
    if "queue" not in _CONTEXT:
        try:
            import pyopencl as cl
        except ImportError as e:
            raise NoOpenClDeviceError("mobile-gpu: running needs pyopencl and an OpenCL device "
                                      "(pip install pyopencl; apt-get install pocl-opencl-icd gives a CPU device)") from e
        devices = []
        try:
            for p in cl.get_platforms():
                devices += p.get_devices()
        except Exception as e:  # noqa: BLE001 - no ICD / platform: same message
            raise NoOpenClDeviceError(f"mobile-gpu: no OpenCL platform in this process ({e}); the compiled OpenCL "
                                      "sources can still be exported and run on a device") from e
        if not devices:
            raise NoOpenClDeviceError("mobile-gpu: no OpenCL device present; the compiled OpenCL sources can "
                                      "still be exported and run on a device")
        from .spec import opencl_device_index

        index, _ = opencl_device_index()   # the first device that compiles (else the first: its error is reported)
        device = devices[index or 0]
        ctx = cl.Context([device])
        _CONTEXT.update(cl=cl, ctx=ctx, queue=cl.CommandQueue(ctx), device=device)
    return _CONTEXT["ctx"], _CONTEXT["queue"], _CONTEXT["device"]


def _np_dtype(dtype: str):
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def _nbytes(shape, dtype: str) -> int:
    return max(1, int(np.prod(shape, dtype=np.int64)) * _np_dtype(dtype).itemsize)


class OpenClRunner:
    """A static plan bound to its OpenCL library, constants and numpy-reference callables."""

    def __init__(self, plan, lib: OpenClLibrary | None, constants: dict[str, np.ndarray],
                 references: dict[int, Callable]):
        self.plan, self.lib, self.references = plan, lib, references
        self.library_path = None
        self.values, self.steps = plan.values, plan.steps
        if plan.dims:
            raise LoweringError("<plan>", "-", "mobile-gpu plans are per input shape (static); got a shape-generic plan")
        self.ctx, self.queue, self.device = opencl_queue()
        cl = _CONTEXT["cl"]
        if lib is not None and "cl_khr_fp16" not in self.device.extensions and "half" in lib.source:
            raise NoOpenClDeviceError(f"mobile-gpu: this build uses fp16 but the OpenCL device "
                                      f"'{self.device.name}' has no cl_khr_fp16; run an fp32 build here")
        self.kernels = {}
        if lib is not None:
            try:
                program = cl.Program(self.ctx, lib.source).build()
            except Exception as e:  # noqa: BLE001 - the device's compiler: name the device, keep its log
                raise LoweringError("<program>", "-", f"the OpenCL device '{self.device.name}' could not build this "
                                    "plan's kernels", e, target="mobile-gpu") from e
            self.kernels = {k.function_name: k for k in program.all_kernels()}
        mf = cl.mem_flags
        self._persistent: dict[str, Any] = {}
        self._host_consts: dict[str, np.ndarray] = {}
        for name, info in self.values.items():
            if info["storage"] == "const" and name in constants:
                arr = np.ascontiguousarray(constants[name], dtype=_np_dtype(info["dtype"]))
                self._host_consts[name] = arr
                self._persistent[name] = cl.Buffer(self.ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=arr) \
                    if arr.nbytes else cl.Buffer(self.ctx, mf.READ_ONLY, 1)
            elif info["storage"] in ("buffer", "output"):
                self._persistent[name] = cl.Buffer(self.ctx, mf.READ_WRITE, _nbytes(info["shape"], info["dtype"]))

    # ---- values ----------------------------------------------------------------------------------
    def _storage(self, name: str) -> str:
        info = self.values[name]
        return info["base"] if info["storage"] == "view" else name

    def _read(self, env: dict, name: str) -> np.ndarray:
        info = self.values[name]
        out = np.empty(info["shape"], _np_dtype(info["dtype"]))
        if out.nbytes:
            _CONTEXT["cl"].enqueue_copy(self.queue, out, env[self._storage(name)])
        return out

    def _write(self, env: dict, name: str, arr: np.ndarray) -> None:
        info = self.values[name]
        arr = np.ascontiguousarray(arr, dtype=_np_dtype(info["dtype"])).reshape(info["shape"])
        if arr.nbytes:
            _CONTEXT["cl"].enqueue_copy(self.queue, env[self._storage(name)], arr)

    # ---- running ---------------------------------------------------------------------------------
    def run_numpy(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """Execute every step on the OpenCL device; returns the outputs as numpy arrays."""
        cl = _CONTEXT["cl"]
        if len(inputs) != len(self.plan.inputs):
            raise ValueError(f"expected {len(self.plan.inputs)} inputs ({', '.join(self.plan.inputs)}), got {len(inputs)}")
        env: dict[str, Any] = dict(self._persistent)
        hosts = {}
        for name, x in zip(self.plan.inputs, inputs):
            info = self.values[name]
            a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
            if list(a.shape) != list(info["shape"]):
                raise ValueError(f"input '{name}' has shape {tuple(a.shape)}; this plan was built for {tuple(info['shape'])}")
            a = np.ascontiguousarray(a, dtype=_np_dtype(info["dtype"]))
            hosts[name] = a
            env[name] = cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=a) \
                if a.nbytes else cl.Buffer(self.ctx, cl.mem_flags.READ_WRITE, 1)
        for i, step in enumerate(self.steps):
            try:
                self._step(i, step, env)
            except (LoweringError, NoOpenClDeviceError):
                raise
            except Exception as e:  # a launch failure: name the node, keep the cause
                raise LoweringError(step.get("node", "?"), step.get("op", "?"), "running its OpenCL kernel failed", e) from e
        outs = [self._read(env, name) for name in self.plan.outputs]
        self.queue.finish()
        for out_name, in_name in self.plan.aliases.items():   # written in place: update the caller's array too
            idx = self.plan.inputs.index(in_name)
            new = outs[self.plan.outputs.index(out_name)]
            x = inputs[idx]
            if hasattr(x, "copy_"):
                x.copy_(sys.modules["torch"].from_numpy(new))
            elif isinstance(x, np.ndarray) and x.flags.writeable:
                x[...] = new
        return outs

    def _step(self, i: int, step: dict, env: dict) -> None:
        kind = step["kind"]
        if kind in ("call", "attention"):
            tensors = ([step[k] for k in ("q", "k", "v", "mask", "out") if step.get(k)] if kind == "attention"
                       else [a for a in step["args"] if a[0] != DIM_ARG])
            if kind == "call" and any(a[0] == DIM_ARG for a in step["args"]):
                raise LoweringError(step["node"], step["op"], "a runtime dim argument in a per-shape plan")
            bufs = [env[self._storage(a[0])] for a in tensors]
            for launch in self.lib.launches[step["func"]]:
                kernel = self.kernels[launch["kernel"]]
                kernel.set_args(*[bufs[j] for j in launch["args"]])
                local = tuple(launch["local"])
                glob = tuple(g * l for g, l in zip(launch["groups"], local))
                _CONTEXT["cl"].enqueue_nd_range_kernel(self.queue, kernel, glob, local)
        elif kind == "reference":
            arrays = [self._read(env, n) for n in step["inputs"]]
            for n, a in zip(step["outputs"], self.references[i](arrays)):
                self._write(env, n, np.asarray(a))
        else:
            raise LoweringError(step.get("node", "?"), step.get("op", "?"), f"unknown plan step kind {kind!r}")

    def __call__(self, inputs: Sequence[Any], as_torch: bool = False) -> list[Any]:
        outs = self.run_numpy(inputs)
        if as_torch:
            torch = sys.modules["torch"]
            return [torch.from_numpy(o) for o in outs]
        return outs
