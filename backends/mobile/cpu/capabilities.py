"""The mobile-cpu target's Capabilities, read from the catalog spec (cost_models/specs/mobile-cpu.json).

TVM-free: the tile pass and the cost report read these without loading the compiler. Every figure used
here carries its datasheet/TRM source in the spec file.
"""
from __future__ import annotations

from functools import lru_cache

from ...base import Capabilities, TileRules

SPEC = "mobile-cpu"

# the attention kernel (attention.py) runs q_block query rows of one head per task and streams every key of
# a row through a score row in L1; its tiles: rows in whole NEON vectors of 4, keys in the config's 32-key
# units, at most 64 rows per task (6 big cores want >= 6 tasks on the test shapes)
MOBILE_CPU_TILES = TileRules(q_block_multiple=4, kv_block_multiple=32, q_block_max=64, kv_block_max=1 << 16)


def device_spec():
    """The catalog's HardwareSpec for mobile-cpu (cost_models imports no TVM)."""
    from ....cost_models.hardware import get_hardware

    return get_hardware(SPEC)


def codegen_facts() -> dict:
    """The spec's "codegen" block: mtriple, mcpu, mattr, vector width, registers, cores, dtypes (with its source)."""
    spec = device_spec()
    facts = spec.extra.get("codegen")
    if not isinstance(facts, dict) or not {"mtriple", "mcpu", "mattr", "vector_width_bits"} <= set(facts):
        raise ValueError(f"hardware spec {spec.path}: 'codegen' must give mtriple, mcpu, mattr and vector_width_bits")
    return facts


@lru_cache(maxsize=None)
def mobile_cpu_capabilities() -> Capabilities:
    """128-bit NEON, the spec's L1d (per core) and L2 (smallest private L2), fp32/fp16; generate-only here."""
    spec = device_spec()
    facts = codegen_facts()
    return Capabilities(vector_width_bits=int(facts["vector_width_bits"]),
                        on_chip_bytes=spec.level("l1d").capacity_bytes,
                        second_level_bytes=spec.level("l2").capacity_bytes,
                        tensor_cores=False, dtypes=tuple(facts.get("dtypes", ("float32",))),
                        runs_here=False, tiles=MOBILE_CPU_TILES)
