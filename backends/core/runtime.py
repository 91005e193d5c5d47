"""Runs a lowered plan with TVM's runtime and numpy only: no attncc, no torch, no TVM compiler.

This file is self-contained on purpose: `export` copies it into the exported folder as
`attncc_runtime.py`, next to the one kernel library, the plan and the constants, so the folder runs
in an environment holding only apache-tvm(-ffi) and numpy (`TVM_USE_RUNTIME_LIB=1` keeps the compiler
library unloaded). Inside attncc, `runner.PlanRunner` extends `PlanExecutor`, and this file loads TVM's
runtime library through tvm_ffi without the `tvm` package, so running a cached build never imports TVM's
compiler (a build that needs it imports `tvm` itself).

A plan (JSON) is a straight-line program over named values: inputs, outputs, intermediate buffers,
constants and views (another value's memory under another shape/dtype); each step calls one function
of the library. Shapes are ints or symbolic dim texts ("past+1"), evaluated per call from the dims
read off the input shapes (`plan["dims"]`: name -> [input index, axis]) with `plan["dim_polys"]`
(text -> [[coefficient, [symbol, ...]], ...]).
"""
from __future__ import annotations

import ctypes
import os
from typing import Any, Sequence

import numpy as np


def _without_torch(load):
    """`load()` keeping torch out of the process: tvm-ffi 0.1.x imports torch eagerly when it is installed
    (its workaround for a Windows symbol clash), which costs this runtime 0.6-3 s and hundreds of MB it never
    uses. A torch imported before stays; one imported later works (tensors still pass through DLPack)."""
    import sys

    if "torch" in sys.modules:
        return load()
    sys.modules["torch"] = None     # makes `import torch` raise ImportError, which tvm-ffi catches
    try:
        return load()
    finally:
        if "torch" in sys.modules and sys.modules["torch"] is None:
            del sys.modules["torch"]


def _import_tvm_without_torch():
    """`import tvm` (its compiler too unless TVM_USE_RUNTIME_LIB=1), keeping torch out (see `_without_torch`)."""
    def load():
        import tvm
        return tvm
    return _without_torch(load)


def _load_tvm_runtime():
    """tvm_ffi with TVM's runtime library (libtvm_runtime.so, RTLD_GLOBAL as `import tvm` loads it) and nothing
    else: no `tvm` Python package, no compiler library. A later `import tvm` still loads the compiler normally
    (the runtime library is the same file, loaded once)."""
    import sys

    def load():
        import tvm_ffi
        if "tvm" not in sys.modules:
            import importlib.util
            from pathlib import Path

            from tvm_ffi.libinfo import load_lib_ctypes

            spec = importlib.util.find_spec("tvm")
            folders = [Path(p) / "lib" for p in (spec.submodule_search_locations or [])] if spec else []
            if os.environ.get("TVM_LIBRARY_PATH"):
                folders.insert(0, Path(os.environ["TVM_LIBRARY_PATH"]))
            load_lib_ctypes("tvm", "tvm_runtime", "RTLD_GLOBAL", extra_lib_paths=folders)
        return tvm_ffi
    return _without_torch(load)


try:    # inside attncc
    from .folder_checks import FolderError, InputError, check_inputs, read_checked_index, read_json
    _IN_ATTNCC = True
except ImportError:   # in an exported folder: the copy written beside this file
    from attncc_checks import FolderError, InputError, check_inputs, read_checked_index, read_json
    _IN_ATTNCC = False

if _IN_ATTNCC:   # TVM's runtime through tvm_ffi only; `import tvm` (and its compiler) is left to the builds
    tvm_ffi = _load_tvm_runtime()
else:            # the folder's users get tvm.runtime.Tensor outputs, as documented in its run.py
    tvm = _import_tvm_without_torch()
    import tvm_ffi


def __getattr__(name: str):
    if name == "tvm":   # `from .runtime import tvm` (a caller that builds, so imports TVM anyway)
        return _import_tvm_without_torch()
    raise AttributeError(name)


# ---- TVM's runtime through tvm_ffi: each works whether or not the `tvm` package is imported --------------
def cpu():
    return tvm_ffi.device("cpu", 0)


def empty(shape, dtype: str, device):
    """An uninitialized tensor (TVM's allocator: 64-byte aligned)."""
    return tvm_ffi.get_global_func("runtime.TVMTensorAllocWithScope")(
        tvm_ffi.Shape([int(d) for d in shape]), tvm_ffi.dtype(str(dtype)), device, None)


def copy_from(dst, src) -> None:
    """Copy a numpy array (or a tensor) into tensor `dst` of the same shape."""
    if isinstance(src, tvm_ffi.Tensor):
        tvm_ffi.get_global_func("runtime.TVMTensorCopyFromTo")(src, dst)
        return
    src = np.asarray(src)
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"cannot copy an array of shape {src.shape} into a tensor of shape {tuple(dst.shape)}")
    if str(dst.dtype) == "bfloat16":   # its 16-bit pattern (ml_dtypes arrays and uint16 bits alike)
        if src.dtype.itemsize != 2:
            raise TypeError(f"a bfloat16 tensor takes a bfloat16 (ml_dtypes) or uint16 array, not {src.dtype}")
        src = np.ascontiguousarray(src).view("uint16")
    elif src.dtype.name != str(dst.dtype):
        src = src.astype(str(dst.dtype))
    src = np.ascontiguousarray(src)
    tvm_ffi.get_global_func("runtime.TVMTensorCopyFromBytes")(dst, src.ctypes.data_as(ctypes.c_void_p), src.nbytes)


def tensor(arr, device):
    """A tensor on `device` holding a copy of numpy array `arr`."""
    arr = np.asarray(arr)
    t = empty(arr.shape, arr.dtype.name, device)
    copy_from(t, arr)
    return t


def from_dlpack(x):
    """A zero-copy tensor over `x` (TVM's kernels need 64-byte aligned, contiguous memory)."""
    return tvm_ffi.from_dlpack(x, require_alignment=64, require_contiguous=True)


def create_view(t, shape, dtype: str):
    """`t`'s memory under another shape/dtype (no copy)."""
    return tvm_ffi.get_global_func("runtime.TVMTensorCreateView")(
        t, tvm_ffi.Shape([int(d) for d in shape]), tvm_ffi.dtype(str(dtype)), 0)


def load_module(path: str):
    """The compiled library at `path` (a .so TVM exported), loaded into this process."""
    if not os.path.isfile(path):
        raise ValueError(f"cannot find file {path}")
    return tvm_ffi.load_module(os.path.realpath(path))


def host_array(t) -> np.ndarray:
    """A host numpy copy of tensor `t` (bfloat16 through ml_dtypes)."""
    if t.device.dlpack_device_type() != 1:   # not kDLCPU: TVM's own copy to the host
        return t.numpy()
    if str(t.dtype) == "bfloat16":
        import ml_dtypes

        return np.from_dlpack(create_view(t, t.shape, "uint16")).view(ml_dtypes.bfloat16).copy()
    return np.from_dlpack(t).copy()


class Tensor(tvm_ffi.core.Tensor):
    """The tensors TVM's runtime hands out while the `tvm` package is not imported, with the `.numpy()` that
    `tvm.runtime.Tensor` has (importing `tvm` later replaces this class with TVM's own)."""

    __slots__ = ()   # tvm_ffi requires the base wrapper's layout

    def numpy(self) -> np.ndarray:
        return host_array(self)


if "tvm" not in __import__("sys").modules and hasattr(tvm_ffi.core, "_set_class_tensor"):   # how tvm sets its own
    tvm_ffi.core._set_class_tensor(Tensor)


# what a folder built for each TVM target kind needs on the machine that runs it
NEEDS = {"cuda": ("CUDA", "an NVIDIA GPU with its driver, and an apache-tvm runtime built with CUDA (USE_CUDA=ON)"),
         "opencl": ("OpenCL", "an OpenCL device with its ICD, and an apache-tvm runtime built with OpenCL"),
         "rocm": ("ROCm", "an AMD GPU with ROCm, and an apache-tvm runtime built with ROCm"),
         "vulkan": ("Vulkan", "a Vulkan device, and an apache-tvm runtime built with Vulkan"),
         "metal": ("Metal", "an Apple GPU, and an apache-tvm runtime built with Metal")}

DIM_ARG = "#dim"   # a call argument that passes a dim's value (int32), not a tensor


class PlanError(RuntimeError):
    """A step of the plan failed; names the IR node and op it came from."""


def _static(shape) -> bool:
    return all(isinstance(d, int) for d in shape)


def size_thread_pool(threads: int | None = None) -> int:
    """Give TVM's CPU pool `threads` workers (default: every core this process may use; TVM alone takes half).

    Must run before the pool first starts. Returns the pool's size."""
    count = tvm_ffi.get_global_func("runtime.NumThreads")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    want = int(os.environ.get("TVM_NUM_THREADS") or threads or len(cpus))
    tvm_ffi.get_global_func("runtime.config_threadpool")(2, want, [str(c) for c in cpus])  # 2: share all cores
    return int(count())


class PlanExecutor:
    """A plan bound to its kernel library and constants; `run(inputs)` returns TVM tensors.

    Inputs: anything exporting DLPack (numpy arrays, torch tensors, TVM tensors), zero-copy when contiguous,
    64-byte aligned and of the declared dtype, else copied once.
    """

    def __init__(self, plan: dict, lib, constants: dict[str, np.ndarray], device=None):
        self.spec, self.lib = plan, lib
        self.dev = device or cpu()
        self.values, self.steps = plan["values"], plan["steps"]
        self._polys = {k: [(c, tuple(s)) for c, s in v] for k, v in plan.get("dim_polys", {}).items()}
        self._funcs = {s["func"]: lib[s["func"]] for s in self.steps if s.get("func")}
        self._persistent: dict[str, Any] = {}
        for name, info in self.values.items():
            if info["storage"] == "const" and name in constants:
                self._persistent[name] = tensor(np.ascontiguousarray(constants[name]), self.dev)
            elif info["storage"] == "buffer" and _static(info["shape"]):
                self._persistent[name] = empty(info["shape"], info["dtype"], self.dev)
        for name, info in self.values.items():
            if info["storage"] == "view" and info["base"] in self._persistent and _static(info["shape"]):
                self._persistent[name] = self._view(self._persistent, info["base"], info["shape"], info["dtype"])
        # arguments over constants/buffers never change: build their views once, not per call
        self._fixed = {i: [self._view(self._persistent, *a) if a[0] in self._persistent and _static(a[1]) else None
                           for a in self._tensor_args(s)] for i, s in enumerate(self.steps) if s.get("func")}
        self._dyn: tuple[tuple, dict] = ((), {})
        self._staging: dict[str, Any] = {}
        # what each call repeats, decided once: the outputs to allocate, the views over per-call values, and
        # per kernel step its function, fixed arguments and which ones come from this call's values
        self._outputs = [(n, i["shape"], i["dtype"]) for n, i in self.values.items() if i["storage"] == "output"]
        self._views = [(n, i["base"], i["shape"], i["dtype"]) for n, i in self.values.items()
                       if i["storage"] == "view" and n not in self._persistent]
        self._calls = {i: self._call_of(s, self._fixed[i]) for i, s in enumerate(self.steps) if s.get("func")}

    def _call_of(self, step: dict, fixed: list) -> tuple:
        """(function name, argument list with the fixed ones filled, [(position, value, shape, dtype, needs a
        view)], dim texts passed as scalars); the function is looked up in `_funcs` per call (a caller may wrap
        it). A value whose declared static shape and dtype are the argument's is passed as is: inputs are checked
        against, and outputs and views allocated with, their declared shapes."""
        fills = []
        for pos, (f, a) in enumerate(zip(fixed, self._tensor_args(step))):
            if f is None:
                info = self.values[a[0]]
                same = _static(a[1]) and list(a[1]) == list(info["shape"]) and a[2] == info["dtype"]
                fills.append((pos, a[0], a[1], a[2], not same))
        dims = [a[1] for a in step["args"] if a[0] == DIM_ARG] if step["kind"] == "call" else []
        return step["func"], list(fixed), fills, dims

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
        return create_view(t, shape, dtype)

    @staticmethod
    def _tensor_args(step: dict) -> list:
        if step["kind"] == "attention":
            return [step[k] for k in ("q", "k", "v", "mask", "out") if step.get(k)]
        return [a for a in step["args"] if a[0] != DIM_ARG]

    def to_tensor(self, x: Any, name: str, dtype: str):
        """A TVM tensor over `x` (zero-copy when TVM accepts its memory as is)."""
        if self.dev.dlpack_device_type() != 1:   # not kDLCPU (a GPU build): host memory is copied to the device
            if isinstance(x, tvm_ffi.Tensor) and x.device == self.dev and x.dtype == dtype:
                return x
            a = np.asarray(host_array(x) if isinstance(x, tvm_ffi.Tensor) else x)
            return tensor(np.ascontiguousarray(a if str(a.dtype) == dtype else a.astype(dtype)), self.dev)
        if isinstance(x, np.ndarray):
            if x.dtype.name == dtype != "bfloat16" and x.flags.c_contiguous and x.ctypes.data % 64 == 0:  # numpy has no bf16 DLPack
                return from_dlpack(x)
            # misaligned (numpy aligns to 16 bytes), strided or another dtype: one copy into a staging
            # tensor kept for this input (no allocation per call; outputs never alias it)
            stage = self._staging.get(name)
            if stage is None or tuple(stage.shape) != x.shape:
                stage = self._staging[name] = empty(x.shape, dtype, self.dev)
            copy_from(stage, x if x.dtype.name == dtype else x.astype(dtype))
            return stage
        if isinstance(x, tvm_ffi.Tensor) and x.dtype == dtype:
            return x
        if hasattr(x, "__dlpack__") and str(x.dtype).replace("torch.", "") == dtype:
            try:
                return from_dlpack(x)
            except Exception:  # noqa: BLE001 - strided or misaligned memory: copy below
                pass
        a = np.asarray(host_array(x) if isinstance(x, tvm_ffi.Tensor) else x)
        if str(a.dtype) != dtype:
            a = a.astype(dtype)
        return tensor(np.ascontiguousarray(a), self.dev)

    def _buffers_for(self, dims: dict[str, int]) -> dict[str, Any]:
        """Intermediates with symbolic shapes, allocated for these dims (kept while the dims repeat)."""
        key = tuple(sorted(dims.items()))
        if self._dyn[0] != key:
            self._dyn = (key, {name: empty(self.shape(info["shape"], dims), info["dtype"], self.dev)
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
        for name, shape, dtype in self._outputs:
            env[name] = empty(self.shape(shape, dims), dtype, self.dev)
        if dims:
            env.update(self._buffers_for(dims))
        for name, base, shape, dtype in self._views:
            if base in env and name not in env:
                env[name] = self._view(env, base, shape, dtype, dims)
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
                fresh = empty(t.shape, t.dtype, self.dev)
                copy_from(fresh, t)
                t = fresh
            outs.append(t)
        return outs

    def step_error(self, step: dict, cause: BaseException) -> Exception:
        return PlanError(f"node '{step.get('node', '?')}' ({step.get('op', '?')}): running its kernel failed: "
                         f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}")

    def run_step(self, i: int, step: dict, env: dict, dims: dict) -> None:
        kind = step["kind"]
        if kind in ("call", "attention"):
            func_name, fixed, fills, dim_texts = self._calls[i]
            args = fixed.copy()
            for pos, name, shape, dtype, view in fills:
                args[pos] = self._view(env, name, shape, dtype, dims) if view else env[name]
            if dim_texts:
                args += [self.dim(t, dims) for t in dim_texts]
            self._funcs[func_name](*args)
        elif kind == "reference":
            raise PlanError(f"node '{step['node']}' runs attncc's numpy reference (no generated kernel): "
                            "this plan needs attncc to run")
        else:
            raise PlanError(f"unknown plan step kind {kind!r}")


def target_kind(target) -> str:
    """"llvm", "cuda", "opencl", ... of a plan index's target (a dict with "kind", or TVM's target text)."""
    return str(target.get("kind", "llvm") if isinstance(target, dict) else (str(target or "llvm").split() or ["llvm"])[0])


def target_device(folder: str, target):
    """The device a folder's kernels run on; FolderError saying which runtime and device it needs when absent."""
    kind = target_kind(target)
    if kind in ("llvm", "c", "cpu"):
        return cpu()
    runtime, needs = NEEDS.get(kind, (kind, f"a {kind} device and an apache-tvm runtime built for it"))
    arch = f" ({target['arch']})" if isinstance(target, dict) and target.get("arch") else ""
    try:
        dev = _import_tvm_without_torch().device(kind, 0)
        present = bool(dev.exist)
    except Exception:  # noqa: BLE001 - a TVM runtime without this device API: same answer as no device
        present = False
    if not present:
        raise FolderError(f"{folder}: its kernels are {runtime} code{arch}; this machine has no {runtime} device "
                          f"that TVM's runtime can use. Run it where there is {needs}")
    return dev


def load_library(path: str, target):
    """TVM's runtime loading the library, a failure named by the file and, for device code, the runtime it needs."""
    try:
        return load_module(path)
    except Exception as e:  # noqa: BLE001 - TVM raises RuntimeError/TVMError with a C++ trace
        last = (str(e).strip().splitlines() or [""])[-1]
        kind = target_kind(target)
        if "not registered" in last and kind in NEEDS:
            runtime, needs = NEEDS[kind]
            arch = f" for {target['arch']}" if isinstance(target, dict) and target.get("arch") else ""
            raise FolderError(f"{path}: holds {runtime} kernels{arch} and this TVM runtime cannot load {runtime} code "
                              f"({last}). Run it where there is {needs}") from None
        raise FolderError(f"{path}: cannot load this kernel library ({type(e).__name__}: {last}); it may be "
                          f"truncated or built for another machine (target {target})") from None


def _load_entry(folder: str, entry: dict, device, target=None) -> PlanExecutor:
    plan = read_json(os.path.join(folder, entry["plan"]))
    lib = load_library(os.path.join(folder, entry["library"]), target) if entry.get("library") else None
    if device is None:
        device = target_device(folder, target)
    constants = {}
    path = os.path.join(folder, entry["constants"])
    try:
        with np.load(path) as data:
            for name in data.files:
                arr = data[name]
                if plan["values"][name]["dtype"] == "bfloat16":  # stored as its uint16 bits
                    import ml_dtypes

                    arr = arr.view(ml_dtypes.bfloat16)
                constants[name] = arr
    except Exception as e:  # noqa: BLE001 - OSError, zipfile.BadZipFile, a pickle refused, a name not in the plan
        raise FolderError(f"{path}: cannot read the constants ({type(e).__name__}: {e}); re-export the model") from None
    return PlanExecutor(plan, lib, constants, device)


class FolderModel:
    """An exported folder: one executor per build (a shape-generic build serves every size).

    Before loading anything, every file is checked against its sha256 in manifest.json (`verify=False` skips
    that, for folders written without a manifest). Each `run` checks the inputs against the manifest: dtype
    (no silent casts unless `allow_cast`), rank, static sizes and the range of every symbolic dim."""

    def __init__(self, folder: str, device=None, allow_cast: bool = False, verify: bool = True):
        self.allow_cast = allow_cast
        self.manifest, self.index = read_checked_index(folder, verify)
        self.inputs, self.outputs = self.index["inputs"], self.index["outputs"]
        target = self.index.get("target")
        self._entries = [(e["shapes"], _load_entry(folder, e, device, target)) for e in self.index["plans"]]

    def check(self, inputs: Sequence[Any]) -> None:
        """InputError naming the input when `inputs` are not what the model was compiled for."""
        if self.manifest is not None and isinstance(self.manifest.get("inputs"), list):
            check_inputs(self.manifest["inputs"], self.manifest.get("dynamic_dims") or {}, inputs, self.allow_cast)

    def run(self, inputs: Sequence[Any]) -> list:
        """Outputs (TVM tensors; `.numpy()` or np.from_dlpack to read them) for these inputs."""
        self.check(inputs)
        shapes = [list(x.shape) for x in inputs]
        for want, executor in self._entries:
            if want == "generic" or want == shapes:
                return executor.run(inputs)
        raise ValueError(f"no build for input shapes {shapes}; builds: {[w for w, _ in self._entries]}")


def load_folder(folder: str, device=None, allow_cast: bool = False, verify: bool = True) -> FolderModel:
    """The model in an exported folder (manifest.json, plans.json, plan_<i>.json, kernels_<i>.so, constants_<i>.npz),
    its files checked against manifest.json first; `allow_cast` lets `run` cast inputs of another dtype."""
    return FolderModel(folder, device, allow_cast, verify)
