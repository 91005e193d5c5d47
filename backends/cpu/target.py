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


def host_caches() -> tuple[int, int]:
    """(L1 data cache bytes per core, L2 bytes per core) of this machine, read from sysfs.

    Falls back to 32 KiB / 1 MiB (the smallest L1d/L2 of the x86 cores LLVM names above) when sysfs
    does not say, e.g. in some containers.
    """
    l1, l2 = 32 * 1024, 1024 * 1024
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(base)):
            folder = os.path.join(base, entry)
            try:
                with open(os.path.join(folder, "level")) as f:
                    level = int(f.read())
                with open(os.path.join(folder, "type")) as f:
                    kind = f.read().strip()
                with open(os.path.join(folder, "size")) as f:
                    text = f.read().strip().upper()
            except (OSError, ValueError):
                continue
            size = int(text.rstrip("KMG")) * {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(text[-1:], 1)
            if level == 1 and kind in ("Data", "Unified"):
                l1 = size
            elif level == 2:
                l2 = size
    except OSError:
        pass
    return l1, l2


# After each kernel TVM's workers spin before sleeping; 300000 rounds (TVM's default) held a core
# that torch needed when a model alternates attncc and torch calls (torch 19.8 ms -> 13.4 ms per
# call at 30000); 30000 still bridges the gaps between the kernels of one call.
SPIN_COUNT = "30000"
_CONFIGURED = 0


def ensure_thread_pool(cores: int | None = None) -> int:
    """Make TVM's CPU thread pool use `cores` workers (default: every core this process may run on).

    TVM sizes its pool from TVM_NUM_THREADS, else hardware_concurrency()/2 on x86 ("ignore
    hyper-threading"): on a 2-vCPU VM that is ONE thread, so every parallel kernel ran on half the
    machine. Sized through TVM's own `runtime.config_threadpool` (no lasting change to os.environ);
    a TVM_NUM_THREADS the user set wins. Returns the pool's thread count.
    """
    from ..core.runtime import tvm_ffi   # TVM's runtime library (the compiler is not needed to run)

    global _CONFIGURED
    want = int(os.environ.get("TVM_NUM_THREADS") or cores or host_cores())
    count = tvm_ffi.get_global_func("runtime.NumThreads")
    if _CONFIGURED != want:
        # configure before anything asks for the pool: once it exists it cannot grow past
        # hardware_concurrency()/2. The pool reads its spin count from the environment while it
        # starts its workers: set it only for that moment (unless the user chose one), then restore.
        had = "TVM_THREAD_POOL_SPIN_COUNT" in os.environ
        os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", SPIN_COUNT)
        try:
            # mode 2 = kSpecifyThreadShareAllCore: `want` workers free to run on every core we may use
            cpus = [str(c) for c in sorted(os.sched_getaffinity(0))] if hasattr(os, "sched_getaffinity") \
                else [str(c) for c in range(os.cpu_count() or 1)]
            tvm_ffi.get_global_func("runtime.config_threadpool")(2, want, cpus)
            _CONFIGURED = want
        finally:
            if not had:
                del os.environ["TVM_THREAD_POOL_SPIN_COUNT"]
    return int(count())
