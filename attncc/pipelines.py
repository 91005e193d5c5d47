"""Default optimization pipelines per target, read from each target's record (backends/<target>/record.py);
the pipeline text itself is composed in one module, `attncc.ir.passes.pipelines`.

Every pass named here must be registered: an unknown name, in a default or in a user's
pipeline, is a PipelineError listing the registered passes (nothing is skipped silently).
"""
from __future__ import annotations

from typing import Any, Mapping

from . import passes as _target_passes  # noqa: F401  (registers tile, mla-absorb)
from .backends import TARGETS, target_record
from .cost_models.target import device_record
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
    """The fusion + tiling pipeline that prices a model on a catalog device (used by `attncc.analyze`)."""
    return _checked(device_record(hardware).pipeline)


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
