"""A host (LLVM) build's one library, compiled by parallel workers and linked once.

Each worker, a forked copy of this process, compiles a share of the plan's PrimFuncs with `tvm.compile` and
writes each as its own object file (one LLVM module per kernel: see _compile_share); this process links the objects with the host's cc (what `export_library`
does for one object) and loads the shared library. Two savings over building one Executable and running it:
- the functions compile on every CPU this process may use ($ATTNCC_BUILD_JOBS overrides the count);
- machine code is emitted once: an Executable run in-process is JIT-compiled again at its first call, and
  its cache entry or export emitted a third time; the loaded library is copied instead (`save_host_library`).
Each function compiles alone either way (TVM codegens PrimFuncs independently), so the kernels and their
numerics do not depend on the worker count.
"""
from __future__ import annotations

import atexit
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
import warnings

import tvm
from tvm.support import cc

from .errors import LoweringError
from .plan import Plan

BUILD_JOBS_ENV = "ATTNCC_BUILD_JOBS"
# the attention kernels take several times longer to compile than a matmul or elementwise kernel
# (their loop nests are the deepest): weighing them more spreads them over the workers first
_HEAVY, _LIGHT = 8, 1
LAST_BUILD = {"processes": 0}   # how many processes compiled this process's latest build (for benchmarks)


class ParallelBuildWarning(UserWarning):
    """A build worker could not run or died; its share of the kernels was built in this process instead."""


class KernelBuildError(RuntimeError):
    """TVM's error while compiling one kernel in a build worker (the original type is named in the message)."""


def build_jobs() -> int:
    """How many processes compile a build: $ATTNCC_BUILD_JOBS, else the CPUs this process may run on that
    other jobs leave idle (like `make -l`: on a busy machine a second worker only queues behind them), at least
    1; 1 where processes cannot fork (the workers are forked copies of this one)."""
    text = os.environ.get(BUILD_JOBS_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{BUILD_JOBS_ENV}={text!r}: expected a whole number of build processes >= 1")
        return int(text)
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        usable = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not Linux
        usable = os.cpu_count() or 1
    try:   # the 1-minute load counts this compile itself (about 1): the rest is other jobs' demand
        idle = (os.cpu_count() or usable) + 1 - os.getloadavg()[0]
    except OSError:
        return usable
    return max(1, min(usable, int(idle + 0.5)))


def split_work(names: list[str], jobs: int) -> list[list[str]]:
    """The function names in `jobs` shares of about equal work (longest first onto the lightest share);
    deterministic: the same names in the same order always give the same shares."""
    weight = {n: _HEAVY if n.endswith("_attention") else _LIGHT for n in names}
    shares: list[list[str]] = [[] for _ in range(max(1, min(jobs, len(names))))]
    loads = [0] * len(shares)
    for name in sorted(names, key=lambda n: -weight[n]):   # stable: plan order within a weight
        i = loads.index(min(loads))
        shares[i].append(name)
        loads[i] += weight[name]
    return [s for s in shares if s]


def build_host_library(plan: Plan, target: dict, config: dict | None = None):
    """Every PrimFunc of `plan` in one shared library, loaded into this process (None when the plan has none).
    The module's `library_path` names the file. A kernel TVM cannot compile raises LoweringError naming its node."""
    if not plan.funcs:
        return None
    from .builder import PASS_CONFIG

    config = {**PASS_CONFIG, **(config or {})}
    folder = tempfile.mkdtemp(prefix="attncc-build-", dir=_scratch_root())
    shares = split_work(list(plan.funcs), build_jobs())
    LAST_BUILD["processes"] = len(shares)
    failures = _compile_shares(plan.funcs, shares, target, config, folder)
    for failure in failures:
        if failure is not None:
            shutil.rmtree(folder, ignore_errors=True)
            raise _lowering_error(plan, failure)
    path = os.path.join(folder, "kernels.so")
    objects = [_object(folder, i, j) for i, share in enumerate(shares) for j in range(len(share))]
    cc.create_shared(path, objects)
    for o in objects:
        os.remove(o)
    lib = tvm.runtime.load_module(path)
    lib.library_path = path   # what save_host_library copies (a loaded library cannot be exported again)
    return lib


def save_host_library(lib, path: str) -> None:
    """Write a library from `build_host_library` (a copy of its file) or any exportable TVM module to `path`."""
    source = getattr(lib, "library_path", None)
    if source:
        shutil.copyfile(source, path)
    else:
        lib.export_library(path)


# ---- workers ------------------------------------------------------------------------------------------
_WORK: dict = {}   # what forked workers read: the functions, target and pass config of the build under way
_ONE_BUILD = threading.Lock()   # _WORK holds one build: builds from several threads take turns


def _compile_shares(funcs: dict, shares: list[list[str]], target: dict, config: dict, folder: str) -> list:
    """Compile share i to folder/share-i.o: shares 1.. in forked workers, share 0 here meanwhile.
    Returns one failure (None: built) per share."""
    with _ONE_BUILD:
        return _compile_shares_locked(funcs, shares, target, config, folder)


def _compile_shares_locked(funcs: dict, shares: list[list[str]], target: dict, config: dict, folder: str) -> list:
    _WORK.update(funcs=funcs, target=target, config=config, folder=folder, shares=shares)
    try:
        workers = []
        for i in range(1, len(shares)):
            try:
                p = multiprocessing.get_context("fork").Process(target=_worker, args=(i,), daemon=True,
                                                                name=f"attncc-build-{i}")
                p.start()
            except Exception as e:  # noqa: BLE001 - no fork here, out of processes, a daemonic parent: built here
                p = e
            workers.append(p)
        results = [_compile_share(0)]
        for i, p in enumerate(workers, start=1):
            results.append(_collect(i, p))
        return results
    finally:
        _WORK.clear()


def _worker(i: int) -> None:
    failure = _compile_share(i)
    with open(os.path.join(_WORK["folder"], f"share-{i}.json"), "w") as f:
        json.dump(failure, f)


def _collect(i: int, p) -> list | None:
    """Share i's outcome from its worker; a worker that could not start or died: the share is built here."""
    names = _WORK["shares"][i]
    if isinstance(p, BaseException):
        why = f"could not start ({type(p).__name__}: {p})"
    else:
        p.join()
        result = os.path.join(_WORK["folder"], f"share-{i}.json")
        if p.exitcode == 0 and os.path.exists(result):
            with open(result) as f:
                return json.load(f)
        why = f"exited with status {p.exitcode}"
    warnings.warn(f"attncc: kernel build worker {i} {why}; building its {len(names)} kernels "
                  f"({', '.join(names[:4])}{', ...' if len(names) > 4 else ''}) in this process",
                  ParallelBuildWarning, stacklevel=4)
    return _compile_share(i)


def _compile_share(i: int) -> list | None:
    """Compile share i, one object file per function; on failure [function name, error type, message].

    One LLVM module per function, because in a module shared with other kernels LLVM sometimes inlined the
    kernels' compute functions and then stored a matmul's register tile (a TVM workspace pointer it could no
    longer prove apart from the inputs) to memory on every k step: the same HF Llama gate/up kernel ran
    4.14 ms in its layer's module vs 1.64 ms compiled alone (one thread, load 0.5-0.8, 2026-12-07)."""
    names, funcs = _WORK["shares"][i], _WORK["funcs"]
    for j, name in enumerate(names):
        try:
            _compile([name], funcs).mod.write_to_file(_object(_WORK["folder"], i, j))
        except Exception as e:  # noqa: BLE001 - reported with its node by the parent
            return [name, type(e).__name__, str(e)]
    return None


def _compile(names: list[str], funcs: dict):
    from .builder import compile_module

    return compile_module(funcs, names, _WORK["target"], _WORK["config"])


def _lowering_error(plan: Plan, failure: list) -> LoweringError:
    name, kind, message = failure
    cause = KernelBuildError(f"{kind}: {message}")
    step = next((s for s in plan.steps if name is not None and s.get("func") == name), None)
    if step is None:
        return LoweringError("<module>", "-", "TVM failed to compile the module", cause)
    return LoweringError(step["node"], step["op"], f"TVM failed to compile its kernel '{name}'", cause)


def _object(folder: str, i: int, j: int) -> str:
    return os.path.join(folder, f"share-{i}-{j}.o")


_ROOT: list[str] = []


def _scratch_root() -> str:
    """This process's folder for built libraries: they stay while the process may load or copy them, and the
    folder goes when it exits (forked workers leave through os._exit and never remove it)."""
    if not _ROOT:
        _ROOT.append(tempfile.mkdtemp(prefix=f"attncc-libs-{os.getpid()}-"))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    return _ROOT[0]
