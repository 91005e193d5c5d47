"""The cost-rule registry: every rule the cost model prices with, named in this one file.

Two read-only tables, built when this module is imported (analyze.py and attention_cost.py import it):
  OP_COST_RULES         IR op name -> how one op is counted and priced (op_rules.py, conv_cost.py, and the
                        collectives' zero-device-time row of system_report.py)
  ATTENTION_COST_RULES  attention feature kind -> how it rewrites the counted AttentionWork (attention_rules.py)
Nothing registers itself by being imported, so a process sees the same rules whichever modules it loaded
first; a rule not named here is not used. Adding an op or a feature kind means adding its row here.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Callable, Mapping

from . import attention_rules as ar
from .attention_cost import AttentionCostRule
from .conv_cost import conv_cost, pool_cost
from .op_rules import (LAYOUT_OPS, VIEW_OPS, attention_op_rule, elementwise_op_rule, index_copy_op_rule,
                       layout_op_rule, matmul_op_rule)
from .pricing import OpCost
from .system_report import COLLECTIVE_KINDS, collective_cost_rule

OpCostRule = Callable[..., OpCost]   # (node, bind, hw, ctx) -> OpCost

OP_COST_RULES: Mapping[str, OpCostRule] = MappingProxyType({
    "Attention": attention_op_rule, "FusedAttention": attention_op_rule,
    "MatMul": matmul_op_rule, "Linear": matmul_op_rule,
    "Unary": elementwise_op_rule, "Binary": elementwise_op_rule, "Activation": elementwise_op_rule,
    "Where": elementwise_op_rule, "Softmax": elementwise_op_rule, "LayerNorm": elementwise_op_rule,
    "RMSNorm": elementwise_op_rule, "Reduce": elementwise_op_rule, "BatchNorm": elementwise_op_rule,
    "Rotary": elementwise_op_rule,
    "CumSum": elementwise_op_rule,  # a running sum: 1 add per element, reads the input once, writes the output once
    **{k: layout_op_rule for k in LAYOUT_OPS + VIEW_OPS},
    "IndexCopy": index_copy_op_rule,
    "Convolution": conv_cost, "Pool": pool_cost,
    # no device time in a per-device report: the system model (systems_api) prices the links
    **{k: collective_cost_rule for k in COLLECTIVE_KINDS},
})

ATTENTION_COST_RULES: Mapping[str, AttentionCostRule] = MappingProxyType({
    "mla": ar.mla_rule, "mtla": ar.mtla_rule,
    "grouped": ar.grouped_rule, "strided": ar.strided_rule,
    "hilo": ar.hilo_rule,
    "moh": ar.moh_rule, "chai": ar.chai_rule, "knocking_heads": ar.knocking_heads_rule,
    "talking_heads": ar.talking_heads_rule,
    "head_blocks": ar.head_blocks_rule, "multi_window": ar.multi_window_rule, "blocked_local": ar.blocked_local_rule,
    "topk_sparse": ar.topk_sparse_rule, "block_sparse": ar.block_sparse_rule, "uniform": ar.uniform_rule,
    "global_query": ar.global_query_rule, "linear": ar.linear_rule, "conv_share": ar.conv_share_rule,
    "alibi": ar.position_bias_rule, "bucketed_bias": ar.position_bias_rule, "window_bias": ar.position_bias_rule,
    "gated_positional": ar.gated_positional_rule,
})


def cost_rules() -> dict[str, dict[str, str]]:
    """Every registered rule by table and key, as `module.function` text (what `attncc` prices with)."""
    def name(fn) -> str:
        return f"{fn.__module__}.{fn.__qualname__}"
    return {"op": {k: name(v) for k, v in OP_COST_RULES.items()},
            "attention": {k: name(v) for k, v in ATTENTION_COST_RULES.items()}}


__all__ = ["OP_COST_RULES", "ATTENTION_COST_RULES", "OpCostRule", "cost_rules"]
