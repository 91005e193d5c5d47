"""Fusion for the backend core: the decision itself lives below backends and cost models, in
`attncc.ir.kernels` (one decision: the plan builds one kernel per group, the cost report prices one row per
group). This module gives the core its names and the target's `FusionRules`."""
from __future__ import annotations

from ...ir.kernels import FusionRules, Group, classify, folded_slices, plan_groups  # noqa: F401  (the core's names)


def fusion_rules(plugin, options: dict | None = None) -> FusionRules:
    """The target plugin's parameters of the grouping decision (and the build options that change it)."""
    return FusionRules(gate_cols=int(getattr(plugin.matmul, "gate_cols", 0) or 0),
                       attention_mask_full=bool(getattr(plugin, "attention_mask_full", False)),
                       attention_generic=(options or {}).get("attention") == "generic",
                       kernel_score_mods=tuple(getattr(plugin.capabilities, "kernel_score_mods", ())))


__all__ = ["FusionRules", "Group", "classify", "plan_groups", "fusion_rules"]
