"""Default LLVM target for this host (never "native": LLVM 22 rejects it)."""
from __future__ import annotations

import functools
import os

_FALLBACKS = ("skylake-avx512", "x86-64-v4", "x86-64-v3", "x86-64")


@functools.lru_cache(maxsize=None)
def host_cpu() -> str:
    import tvm  # noqa: F401  (registers the target.* global functions)
    import tvm_ffi
    try:
        cpu = str(tvm_ffi.get_global_func("target.llvm_get_system_cpu")())
        triple = str(tvm_ffi.get_global_func("target.llvm_get_system_triple")())
        valid = tvm_ffi.get_global_func("target.llvm_is_valid_cpu")
        if cpu and cpu != "generic" and valid(cpu, triple):
            return cpu
        for c in _FALLBACKS:
            if valid(c, triple):
                return c
    except Exception:  # pragma: no cover - very old/new TVM
        pass
    return "x86-64"


def num_threads() -> int:
    env = os.environ.get("TVM_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def default_target() -> dict:
    return {"kind": "llvm", "mcpu": host_cpu(), "num-cores": num_threads()}


def target_key(target: dict | None) -> tuple:
    t = default_target() if target is None else target
    if isinstance(t, dict):
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in t.items()))
    return (str(t),)
