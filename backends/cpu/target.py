"""The LLVM target for the host CPU, named from /proc/cpuinfo (never "native", which this LLVM rejects)."""
from __future__ import annotations

import os
from functools import lru_cache

# Most specific first: (vendor, required flags, -mcpu). Flags as spelled in /proc/cpuinfo.
_CPU_TABLE: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("AuthenticAMD", ("avx512f", "avx512_bf16"), "znver4"),
    ("AuthenticAMD", ("avx2", "vaes"), "znver3"),
    ("AuthenticAMD", ("avx2", "clwb"), "znver2"),
    ("AuthenticAMD", ("avx2",), "znver1"),
    ("GenuineIntel", ("avx512f", "amx_tile"), "sapphirerapids"),
    ("GenuineIntel", ("avx512f", "avx512_bf16"), "cooperlake"),
    ("GenuineIntel", ("avx512f", "avx512_vbmi2"), "icelake-server"),
    ("GenuineIntel", ("avx512f", "avx512_vnni"), "cascadelake"),
    ("GenuineIntel", ("avx512f",), "skylake-avx512"),
    ("GenuineIntel", ("avx2",), "haswell"),
    ("", ("avx2", "fma"), "haswell"),
    ("", ("avx",), "sandybridge"),
)


def read_cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """(vendor id, flag set) of the first processor in `path`; ("", empty) when unreadable."""
    vendor, flags = "", set()
    try:
        with open(path) as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "vendor_id" and not vendor:
                    vendor = val.strip()
                elif key == "flags" and not flags:
                    flags = set(val.split())
                if vendor and flags:
                    break
    except OSError:
        pass
    return vendor, flags


def mcpu_from_flags(vendor: str, flags: set[str]) -> str:
    """The LLVM -mcpu name for a vendor and cpuinfo flag set ("x86-64" when nothing better is known)."""
    for want_vendor, need, name in _CPU_TABLE:
        if (not want_vendor or want_vendor == vendor) and all(f in flags for f in need):
            return name
    return "x86-64"


def host_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@lru_cache(maxsize=None)
def host_target(mcpu: str | None = None, num_cores: int | None = None) -> dict:
    """The TVM target dict for this machine, e.g. {"kind": "llvm", "mcpu": "znver4", "num-cores": 2}.

    `ATTNCC_CPU_MCPU` overrides the detected CPU name (e.g. to build for an older fleet).
    """
    vendor, flags = read_cpuinfo()
    name = mcpu or os.environ.get("ATTNCC_CPU_MCPU") or mcpu_from_flags(vendor, flags)
    return {"kind": "llvm", "mcpu": name, "num-cores": int(num_cores or host_cores())}


def vector_width_bits() -> int:
    """Widest SIMD register of the host (512 with AVX-512, 256 with AVX2, else 128)."""
    _, flags = read_cpuinfo()
    if "avx512f" in flags:
        return 512
    if "avx2" in flags or "avx" in flags:
        return 256
    return 128


def host_dtypes() -> tuple[str, ...]:
    """Dtypes the backend compiles for on this host (bf16 is computed in fp32 with bf16 storage)."""
    return ("float32", "bfloat16", "float16")


def ensure_thread_pool(cores: int | None = None) -> int:
    """Make TVM's CPU thread pool use `cores` workers (default: every core this process may run on).

    TVM sizes its pool once, from TVM_NUM_THREADS, else hardware_concurrency()/2 on x86 ("ignore
    hyper-threading"): on a 2-vCPU VM that is ONE thread, so every parallel kernel ran on half the
    machine. The pool cannot grow after it exists, so this sets the variable (unless the user did)
    before the first kernel runs. Returns the pool's thread count (less than `cores` when the pool
    was created earlier, e.g. by other TVM code in this thread).
    """
    import tvm  # noqa: F401  (loads the runtime)
    import tvm_ffi

    os.environ.setdefault("TVM_NUM_THREADS", str(int(cores or host_cores())))
    return int(tvm_ffi.get_global_func("runtime.NumThreads")())
