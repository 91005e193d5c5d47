"""The TVM target of mobile-cpu (from the catalog spec) and the NEON sizes the schedules derive from it."""
from __future__ import annotations

from .capabilities import codegen_facts, device_spec


def mobile_target(options: dict | None = None) -> dict:
    """{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a76", "mattr": [...], "num-cores": N}.

    options: "mcpu" (another aarch64 CPU LLVM knows, e.g. "cortex-x1"), "mattr" (list), "num_cores" (the
    thread count the kernels are split for; default: the spec's big cores).
    """
    options = options or {}
    facts = codegen_facts()
    mattr = options.get("mattr") or list(facts["mattr"])
    cores = int(options.get("num_cores") or device_spec().parallel_units or facts.get("cores", 4))
    return {"kind": "llvm", "mtriple": facts["mtriple"], "mcpu": options.get("mcpu") or facts["mcpu"],
            "mattr": list(mattr), "num-cores": cores}


def fp32_lanes() -> int:
    """fp32 lanes in one NEON register (128 bits -> 4)."""
    return int(codegen_facts()["vector_width_bits"]) // 32


def vector_registers() -> int:
    """Architectural SIMD registers (AdvSIMD: 32 V registers)."""
    return int(codegen_facts().get("vector_registers", 32))
