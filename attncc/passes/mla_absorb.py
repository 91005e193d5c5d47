"""mla-absorb: pick MLA's computation order — absorbed for decode, naive for prefill — by the cost model.

An MLA op (`spec.kv_source` of kind "mla", ir/ops/attention_features/latent.py) computes the same
result either way; its `absorbed` flag picks the order. Naive expands every cached latent into
per-head K/V (cheap per score, but re-expands the whole cache each step); absorbed folds W_uk
into the query and W_uv into the output and attends over the latent directly (MQA with
D = latent + rope: more FLOPs per score, no expansion). The pass prices both with
`attention_cost` on `target` (the cost model's MLA rule counts each form) and keeps the faster,
so decode (one query row per head) goes absorbed and long prefill stays naive.
Options: target (a registered target or a catalog device, as in `tile`), dims / default_dim bind symbolic dims for pricing as in `tile`.
Requires: nothing. Guarantees: same outputs; every MLA op's `absorbed` is the cheaper form.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from attncc.cost_models.attention_cost import attention_cost
from attncc.ir.graph import Graph
from attncc.ir.passes.base import Pass, register_pass

from attncc.cost_models.hardware import get_hardware

from .options import parse_dims, resolve_target
from .tile import _eval


@register_pass
@dataclass(frozen=True)
class MLAAbsorb(Pass):
    """Set MLA's `absorbed` flag to the form the cost model predicts faster on `target`."""

    name: ClassVar[str] = "mla-absorb"
    target: str = "cpu"
    dims: str = ""
    default_dim: int = 1024

    def run(self, graph: Graph) -> Graph:
        hw = get_hardware(resolve_target(self.name, self.target).device)
        env = parse_dims(self.name, self.dims)
        for node in graph.nodes:
            if node.op.op_name not in ("Attention", "FusedAttention"):
                continue
            feat = node.op.spec.kv_source
            if feat is None or feat.kind != "mla":
                continue
            spec = node.op.spec
            seq_ax = 2 if spec.layout == "bhsd" else 1
            q, k = node.inputs[0], node.inputs[1]
            batch, q_len, kv_len = (_eval(d, env, self.default_dim) for d in (q.shape[0], q.shape[seq_ax], k.shape[seq_ax]))
            times = {}
            for absorbed in (False, True):
                s = spec.replace(kv_source=dataclasses.replace(feat, absorbed=absorbed))
                times[absorbed] = attention_cost(s, batch, q_len, kv_len, q.dtype, None, hw).time_s
            best = times[True] < times[False]
            if best != feat.absorbed:
                new_spec = spec.replace(kv_source=dataclasses.replace(feat, absorbed=best))
                node.op = dataclasses.replace(node.op, spec=new_spec)  # same inputs and types, other order
            graph.metadata.setdefault("mla_absorb", {})[node.name] = {
                "absorbed": best, "naive_s": times[False], "absorbed_s": times[True], "target": hw.name}
        return graph
