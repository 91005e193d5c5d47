"""Options shared by the target-aware passes: the hardware to price on and values for symbolic dims."""
from __future__ import annotations

from attncc.cost_models import get_hardware
from attncc.cost_models.hardware import HardwareSpec
from attncc.cost_models.target import Target, TargetError, device_record, is_target, target_record
from attncc.ir.passes.base import PipelineError


def resolve_hardware(pass_name: str, target: str) -> HardwareSpec:
    """The catalog spec for a pass's `target` option; a PipelineError naming the pass and option otherwise."""
    try:
        return get_hardware(target)
    except ValueError as e:
        raise PipelineError(f"pass '{pass_name}': option 'target': {e}") from None


def resolve_target(pass_name: str, target: str) -> Target:
    """The Target record a pass's `target` option names: a registered target, with its options ("cuda",
    "cuda:arch=sm_80"), or a catalog device priced without a target's tile rules ("h100"); a PipelineError
    naming the pass and option otherwise."""
    try:
        return target_record(target) if is_target(target) else device_record(resolve_hardware(pass_name, target).name)
    except TargetError as e:
        raise PipelineError(f"pass '{pass_name}': option 'target': {e}") from None


def parse_dims(pass_name: str, text: str) -> dict[str, int]:
    """`"S:512;past:4096"` -> {"S": 512, "past": 4096}; errors name the pass and the item."""
    env = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        name, sep, val = item.partition(":")
        if not sep or not val.strip().isdigit():
            raise PipelineError(f"pass '{pass_name}': option 'dims' item {item!r} must be NAME:INT (items separated by ';')")
        env[name.strip()] = int(val)
    return env
