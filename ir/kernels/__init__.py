"""Kernel grouping: which IR ops become one kernel and which are free views; read by the backend core
(one compiled kernel per launch) and by the cost report (one priced row per launch)."""
from .attention_parts import PART_CLASS, attention_parts, kernel_blocker, mask_needs_copy
from .folded import folded_slices
from .groups import FusionRules, Group, classify, plan_groups
from .launches import Launch, in_place, kernel_launches, symbolic_shapes

__all__ = ["folded_slices", "PART_CLASS", "attention_parts", "kernel_blocker", "mask_needs_copy", "FusionRules", "Group", "classify",
           "plan_groups", "Launch", "in_place", "kernel_launches", "symbolic_shapes"]
