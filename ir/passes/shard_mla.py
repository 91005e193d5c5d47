"""Tensor parallelism for MLA (DeepSeek-V2/V3 latent attention): query heads and the per-head
up-projections (w_uk, w_uv) split over TP ranks; the compressed latent and the shared RoPE key (the
latent KV cache) are replicated on every rank, as vLLM and SGLang run MLA under TP. (DeepSeek's own
choice, data-parallel attention, is the batch split of shard_attention._data_parallel: pass
`data_parallel_attention=True` to shard_graph.)
"""
from __future__ import annotations

from ..graph import Graph
from ..ops import Attention
from .shard_attention import _require_split, head_axis
from .shard_layout import RankRebuild, Split, WeightSlice


def plan_mla(graph: Graph, tp: int, slices: dict[str, WeightSlice]) -> list[str]:
    """Add the head slices of every MLA attention's up-projections to `slices` (plan_attention has
    already planned the query, and checked that tp divides the heads); returns notes."""
    notes = []
    for node in graph.attention_ops():
        s = node.spec
        if node.op.op_name != "Attention" or getattr(s.kv_source, "kind", None) != "mla":
            continue
        per = s.num_heads // tp
        ranges = tuple((r * per, (r + 1) * per) for r in range(tp))
        named = node.op.named_inputs(node)
        for name in ("w_uk", "w_uv"):
            _require_split(named[name], 1, ranges, slices, "tp")
        notes.append(f"'{node.name}' (MLA): {per} of {s.num_heads} heads per rank, latent cache "
                     f"({s.kv_source.latent_dim} + {s.kv_source.rope_dim} per token) replicated on all {tp} ranks")
    return notes


def mla_heads(rb: RankRebuild, node, ins, ql: Split):
    """This rank's query heads against the whole (replicated) latent, with its heads' w_uk and w_uv."""
    s = node.spec
    args = []
    for name, item in zip(s.input_names(), ins):
        if name == "query":
            args.append(item[0])
        elif name in ("w_uk", "w_uv"):
            args.append(rb.local_block(item, ql.at(1)))
        elif name == "mask" and item[0].rank == 4 and item[0].shape[1] != 1:
            args.append(rb.local_block(item, ql.at(1)))
        else:
            args.append(rb.replicated(item))
    spec = s.replace(num_heads=ql.stop - ql.start)
    outs = rb.emit(node, Attention(spec=spec, tiling=node.op.tiling), args)
    return [(outs[0], ql.at(head_axis(s)))] + [(o, None) for o in outs[1:]]
