"""Default optimization pipelines per target — the one place they are defined.

Every pass named here must be registered: an unknown name, in a default or in a user's
pipeline, is a PipelineError listing the registered passes (nothing is skipped silently).
"""
from __future__ import annotations

import os

from . import passes as _target_passes  # noqa: F401  (registers tile, mla-absorb)
from .ir.passes import parse_pipeline, split_pipeline

# Order matters: clean up, lift spelled-out attention (and DeepSeek's latent K/V into MLA while RoPE is still
# spelled out), peel what SDPA-made ops read off their key
# (repeat_kv, then the KV-cache concat, so the new key is exposed), turn spelled-out RoPE into Rotary
# ops, fold layout/repeat_kv/RoPE into the op (fold-repeat-kv again for repeats a layout flip exposes, and
# once more for repeats under the RoPE that fuse-attention folds: Falcon rotates the already-broadcast K),
# pack projections, then the target-aware passes (attncc/passes): MLA order, decode split-KV plan, tiles.
_FUSE = ("canonicalize,constant-fold,lift-attention,lift-mla,fold-repeat-kv,fold-kv-cache,lift-rotary,"
         "canonicalize-attention,fold-repeat-kv,fuse-attention,fold-repeat-kv,fuse-qkv,cse,canonicalize,dce")


def _host_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _for(hardware: str, parallel_units: int) -> str:
    return (f"{_FUSE},mla-absorb{{target={hardware}}},decode-split-kv{{parallel_units={parallel_units}}},"
            f"tile{{target={hardware}}}")


DEFAULT_PIPELINES: dict[str, str] = {
    "reference": "canonicalize,constant-fold,lift-attention,canonicalize-attention,fold-repeat-kv,dce",
    "cpu": _for("cpu", _host_cores()),    # host: the cores this process may run on
    "cuda": _for("h100", 132),            # SMs
    "mobile-cpu": _for("mobile-cpu", 6),
    "mobile-gpu": _for("mobile-gpu", 12),
    "optical": _for("optical", 1),        # one 4f correlator: splitting KV buys no parallelism
}


# parallel units the decode split-KV plan starts from per catalog entry (tile refits it from the spec)
HARDWARE_PARALLEL_UNITS = {"host-cpu": 2, "h100-sxm": 132, "h200": 132, "a100-80gb": 108, "mobile-cpu": 6,
                           "mobile-gpu": 12, "optical-4f": 1}


def pipeline_for_hardware(hardware: str) -> str:
    """The fusion + tiling pipeline that prices a model on a catalog device (used by `attncc.analyze`)."""
    return _checked(_for(hardware, HARDWARE_PARALLEL_UNITS.get(hardware, 1)))


def default_pipeline(target: str) -> str:
    """The default pipeline text for `target` (targets without their own use the reference pipeline)."""
    return _checked(DEFAULT_PIPELINES.get(target, DEFAULT_PIPELINES["reference"]))


def _checked(text: str) -> str:
    """`text`, after checking every pass it names is registered (PipelineError otherwise)."""
    validate(text)
    return text


def validate(text: str) -> None:
    """Raise PipelineError for a malformed pipeline or an unknown pass (the message lists the registered passes)."""
    parse_pipeline(text)
