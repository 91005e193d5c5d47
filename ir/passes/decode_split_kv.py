"""decode-split-kv: give decode-shaped attention a split-KV plan.

With one (or a few) query rows per head, a flash kernel that walks the KV sequence in one
thread block per (batch, kv head) leaves most cores idle and is bound by a single stream of
KV reads. Splitting the KV sequence into `num_splits` chunks processed in parallel, each
producing a partial output plus its log-sum-exp, then merging them
(out = Σ_i exp(lse_i - lse) out_i, lse = log Σ_i exp(lse_i)) restores parallelism.
This pass selects that plan by setting `Tiling.num_splits` (other tiling fields are kept);
the op's semantics are unchanged, backends and the cost model read the plan. The tile pass
may refine the count for a concrete target.

num_splits = enough chunks that batch x kv_heads x splits covers `parallel_units`, but no
chunk shorter than `min_chunk` keys (when the KV length is static), at most `max_splits`.
Requires: nothing. Guarantees: same outputs; every attention op with a static query length
<= max_q_len has tiling.num_splits >= 1.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from ..graph import Graph, Node
from ..ops import Tiling
from .base import Pass, register_pass


def plan_splits(node: Node, parallel_units: int, min_chunk: int, max_splits: int) -> int:
    """Number of KV splits for a decode-shaped attention node."""
    spec = node.op.spec
    seq_ax = 2 if spec.layout == "bhsd" else 1
    batch = node.inputs[0].shape[0]
    work_items = (batch if isinstance(batch, int) else 1) * spec.num_kv_heads
    splits = max(1, math.ceil(parallel_units / work_items))
    kv = node.inputs[1].shape[seq_ax]
    if spec.kv_cache:
        past = node.op.named_inputs(node)["past_key"].shape[seq_ax]
        kv = kv + past if isinstance(kv, int) and isinstance(past, int) else None
    if isinstance(kv, int):
        splits = min(splits, max(1, kv // min_chunk))
    return max(1, min(splits, max_splits))


@register_pass
@dataclass(frozen=True)
class DecodeSplitKV(Pass):
    """Set Tiling.num_splits on attention ops whose query length is 1 (or <= max_q_len)."""

    name: ClassVar[str] = "decode-split-kv"
    max_q_len: int = 1
    parallel_units: int = 16
    min_chunk: int = 256
    max_splits: int = 64

    def run(self, graph: Graph) -> Graph:
        for node in graph.nodes:
            if node.op.op_name not in ("Attention", "FusedAttention"):
                continue
            seq_ax = 2 if node.op.spec.layout == "bhsd" else 1
            q_len = node.inputs[0].shape[seq_ax]
            if not isinstance(q_len, int) or q_len > self.max_q_len:
                continue
            splits = plan_splits(node, self.parallel_units, self.min_chunk, self.max_splits)
            tiling = dataclasses.replace(node.op.tiling or Tiling(), num_splits=splits)
            node.op = dataclasses.replace(node.op, tiling=tiling)  # attributes only: types are unchanged
        return graph
