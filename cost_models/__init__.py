"""attncc.cost_models: hardware catalog, op counting, roofline pricing, reports.

Counting (FLOPs, bytes per memory level for the chosen tiling, KV-cache size) is separate
from pricing (roofline + calibrated efficiency + launch overhead). Never imports tvm.
"""
from .attention_cost import AttentionWork, attention_cost, attention_tile_footprint, default_tiling, visible_pairs
from .hardware import ComputeUnit, HardwareError, HardwareSpec, MemoryLevel, cache_dir, get_hardware, list_hardware
from .analyze import UnboundDimError, UnknownDimError, analyze_graph
from .calibrate import calibrate_host
from .rules import ATTENTION_COST_RULES, OP_COST_RULES, cost_rules
from .compare import compare
from .matmul_cost import matmul_cost
from .pricing import OpCost, price
from .report import CostReport, Row
from .collectives import CollectiveCost, bus_factor, collective_time
from .systems import System, SystemSpecError, custom_system, get_system, list_systems

__all__ = [
    "ATTENTION_COST_RULES", "AttentionWork", "attention_cost", "attention_tile_footprint", "cost_rules",
    "default_tiling", "visible_pairs", "ComputeUnit", "HardwareError", "HardwareSpec", "MemoryLevel", "cache_dir",
    "get_hardware", "list_hardware", "matmul_cost", "OpCost", "price", "OP_COST_RULES", "UnboundDimError", "UnknownDimError",
    "analyze_graph", "calibrate_host", "compare", "CostReport", "Row",
    "CollectiveCost", "bus_factor", "collective_time", "System", "SystemSpecError", "custom_system", "get_system",
    "list_systems",
]
