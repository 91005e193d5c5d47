"""Default optimization pipelines per target, read from each target's record (backends/<target>/record.py);
the pipeline text itself is composed in one module, `attncc.ir.passes.pipelines`.

Every pass named here must be registered: an unknown name, in a default or in a user's
pipeline, is a PipelineError listing the registered passes (nothing is skipped silently).
"""
from __future__ import annotations

from typing import Any, Mapping

from . import passes as _target_passes  # noqa: F401  (registers tile, mla-absorb)
from .backends import TARGETS, target_record
from .cost_models.target import Target, device_record, target_for_device
from .ir.passes import parse_pipeline, split_pipeline
from .ir.passes.pipelines import FUSE as _FUSE  # noqa: F401  (kept for callers that extend the fusion prefix)
from .ir.passes.pipelines import REFERENCE


class _DefaultPipelines(dict):
    """target name -> its record's default pipeline (read on access, so a test may override one entry)."""

    def __missing__(self, target: str) -> str:
        if target not in TARGETS or not TARGETS[target].record:
            raise KeyError(target)
        return target_record(target).pipeline

    def __iter__(self):
        own = list(dict.keys(self))
        return iter(own + [t for t, i in TARGETS.items() if i.record and t not in own])

    def __contains__(self, target) -> bool:
        return dict.__contains__(self, target) or (target in TARGETS and bool(TARGETS[target].record))

    def get(self, target, default=None):
        return self[target] if target in self else default


DEFAULT_PIPELINES: dict[str, str] = _DefaultPipelines()


def pipeline_for_hardware(hardware: str) -> str:
    """The fusion + tiling pipeline that prices a model on a catalog device (used by `attncc.analyze`): the
    default pipeline of the target that builds for it (`pricing_record`), so the report prices the tiles that
    target's kernels are built with."""
    return _checked(pricing_record(hardware).pipeline)


def pricing_record(hardware: str) -> Target:
    """The Target record whose pipeline (tile rules, parallel units) a report on catalog device `hardware` runs.

    The target building for it (`target_for_device`: host-cpu -> cpu, h100-sxm -> cuda) at the options whose
    build runs there (cuda: the arch listing the device, so a100-80gb -> cuda:arch=sm_80, h800-sxm -> the sm_90a
    build, which is tiled for that record's device h100-sxm); a device no target builds for is priced on its own
    record, without tile rules (`device_record`)."""
    name = target_for_device(hardware)
    if name is None:
        return device_record(hardware)
    record = target_record(name)
    if record.device != hardware and name == "cuda":   # the arch option picks the build (and the device it tiles for)
        from .backends.cuda.arch import ARCHES

        arch = next((a for a, spec in ARCHES.items() if hardware in spec.devices), None)
        record = target_record(name, {"arch": arch}) if arch else record
    return record


def default_pipeline(target: str, options: Mapping[str, Any] | None = None) -> str:
    """The default pipeline text for `target` with these compile options (a cuda arch picks the device the tile
    pass prices and its SM count); targets without their own use the reference pipeline."""
    if options and target in TARGETS and TARGETS[target].record and target not in dict.keys(DEFAULT_PIPELINES):
        return _checked(target_record(target, options).pipeline)
    return _checked(DEFAULT_PIPELINES.get(target, REFERENCE))


def _checked(text: str) -> str:
    """`text`, after checking every pass it names is registered (PipelineError otherwise)."""
    validate(text)
    return text


def validate(text: str) -> None:
    """Raise PipelineError for a malformed pipeline or an unknown pass (the message lists the registered passes)."""
    parse_pipeline(text)
