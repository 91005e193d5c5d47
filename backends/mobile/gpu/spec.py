"""The mobile-gpu target's device limits and Capabilities, read from cost_models/specs/mobile-gpu.json.

TVM-free (the tile pass and the cost report read these without importing TVM). The spec's "opencl" section
holds per-device figures (Adreno 640, Mali-G76), each with its cited source, and the portable minimum the
kernels are sized against, so one build fits every device of the class.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ...base import Capabilities, TileRules

SPEC = Path(__file__).resolve().parents[3] / "cost_models" / "specs" / "mobile-gpu.json"


@dataclass(frozen=True)
class OpenClLimits:
    """What one OpenCL work-group may use on the target class (the kernels' compile-time limits)."""

    max_work_group_size: int
    local_mem_bytes: int
    subgroup_size: int
    fp16: bool
    memory_objects: str
    source: str
    devices: tuple[str, ...] = ()


@lru_cache(maxsize=None)
def opencl_limits() -> OpenClLimits:
    """The portable limits of the spec's "opencl" section (a clear error when the spec lacks them)."""
    spec = json.loads(SPEC.read_text())
    section = spec.get("opencl")
    if not section or "portable" not in section:
        raise ValueError(f"{SPEC}: no 'opencl.portable' section (max_work_group_size, local_mem_bytes, "
                         "subgroup_size, fp16, memory_objects); mobile-gpu kernels cannot be sized")
    p = section["portable"]
    missing = [k for k in ("max_work_group_size", "local_mem_bytes", "subgroup_size", "fp16", "source") if k not in p]
    if missing:
        raise ValueError(f"{SPEC}: opencl.portable lacks {', '.join(missing)}")
    return OpenClLimits(int(p["max_work_group_size"]), int(p["local_mem_bytes"]), int(p["subgroup_size"]),
                        bool(p["fp16"]), str(p.get("memory_objects", "buffer")), str(p["source"]),
                        tuple(section.get("devices", {})))


@lru_cache(maxsize=None)
def opencl_device_index() -> tuple[int | None, str | None]:
    """(index among all platforms' devices of the first one that builds a kernel, None) or (None, why not).

    A device that is listed but cannot compile is passed over: PoCL 3.0 in pyopencl's wheels (LLVM 14) names
    a Zen 5 host CPU 'generic' and rejects it ('unknown target CPU'); Debian's PoCL 3.1 works there."""
    try:
        import pyopencl as cl

        devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    except Exception as e:  # noqa: BLE001 - no pyopencl / ICD loader / platform
        return None, f"{type(e).__name__}: {str(e).strip()[:200]}"
    if not devices:
        return None, "no OpenCL device"
    why = ""
    for i, dev in enumerate(devices):
        try:
            cl.Program(cl.Context([dev]), "__kernel void probe(__global float* a) { a[0] = 1.0f; }").build()
            return i, None
        except Exception as e:  # noqa: BLE001 - this device's compiler fails: try the next
            lines = [l.strip() for l in str(e).splitlines() if "error" in l.lower()]
            why = f"{type(e).__name__}: {(lines[-1] if lines else str(e).strip())[:200]}"
    return None, why


def opencl_problem() -> str | None:
    """None when some OpenCL device here builds kernels (the executor uses the first such), else why not."""
    return opencl_device_index()[1]


def opencl_device_present() -> bool:
    """True when an OpenCL device in this process compiles kernels (PoCL's CPU device counts)."""
    return opencl_problem() is None


def gpu_tile_rules(limits: OpenClLimits) -> TileRules:
    """Attention tiles the OpenCL kernel accepts: one work-item per query row (q_block <= work-group size,
    multiple of the subgroup), key blocks of 32 staged in local memory (64 at most: K and V tiles of a
    128-wide head already take 32 KB at 32 keys... the kernel shrinks them further when they do not fit)."""
    return TileRules(q_block_multiple=limits.subgroup_size, kv_block_multiple=32,
                     q_block_max=limits.max_work_group_size, kv_block_max=64)


@lru_cache(maxsize=None)
def mobile_gpu_capabilities() -> Capabilities:
    """Adreno/Mali-class OpenCL: local memory per work-group, fp16, the attention kernel's tile rules."""
    lim = opencl_limits()
    return Capabilities(vector_width_bits=128, on_chip_bytes=lim.local_mem_bytes, second_level_bytes=0,
                        tensor_cores=False, dtypes=("float32", "float16") if lim.fp16 else ("float32",),
                        runs_here=opencl_device_present(), tiles=gpu_tile_rules(lim))
