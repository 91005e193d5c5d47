"""Which CPU a host-cpu spec describes, and whether that is this machine.

The shipped host-cpu spec (and every spec `attncc calibrate` writes) records the host its figures were
measured on (`host`: CPU model name and vector ISA, read from /proc/cpuinfo). On another CPU the spec's
figures are not this machine's: reports then say "uncalibrated on this machine (run attncc calibrate)"
instead of naming a CPU the machine is not.
"""
from __future__ import annotations

import os
from pathlib import Path

UNCALIBRATED = "uncalibrated on this machine (run attncc calibrate)"


def _cpuinfo_first() -> dict[str, str]:
    """The first processor's /proc/cpuinfo fields ({} where there is none, e.g. macOS)."""
    try:
        block = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in block.splitlines())}


def cpu_model() -> str:
    """This machine's CPU model name ("AMD EPYC", "Intel(R) Xeon(R) ..."), "" when it cannot be read."""
    info = _cpuinfo_first()
    return info.get("model name") or info.get("Model") or info.get("Hardware") or ""


def vector_isa() -> str:
    """The widest vector ISA the CPU flags list: avx512, avx2, sse, neon (aarch64), or "" when unknown."""
    info = _cpuinfo_first()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    for isa, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("neon", "asimd"), ("sse", "sse2")):
        if flag in flags:
            return isa
    return ""


def this_host() -> dict:
    """The host record a spec measured here carries: CPU model, vector ISA and logical CPUs, with the source."""
    return {"cpu_model": cpu_model(), "isa": vector_isa(), "logical_cpus": os.cpu_count() or 0,
            "source": "/proc/cpuinfo 'model name' and flags, os.cpu_count()"}


def host_mismatch(described: dict | None) -> str | None:
    """None when the spec's `host` record is this machine's CPU (same model name and vector ISA), else why not.
    A spec without a `host` record describes no particular CPU and is never flagged."""
    if not described:
        return None
    here = {"cpu_model": cpu_model(), "isa": vector_isa()}
    for field in ("cpu_model", "isa"):
        want = described.get(field)
        if want and here[field] and here[field].strip().lower() != str(want).strip().lower():
            return f"the spec was measured on a CPU with {field} {want!r}, this machine has {here[field]!r}"
    return None
