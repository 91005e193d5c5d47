"""shard: partition a lifted graph over tensor (tp), expert (ep), pipeline (pp) and data (dp) parallel
ranks the way deployments do, inserting the collectives.

Requires: lifting (Attention ops with their specs; run before fuse-qkv packs the projections).
Guarantees: `shard_graph` returns one verified graph per tp*ep*pp rank whose weights are the real
slices, and running them in lock step (`attncc.ir.interpreter.run_ranks`) equals the unsharded graph.

- TP: attention heads (shard_attention; MLA in shard_mla), Megatron column/row MLPs (shard_mlp), one
  all-reduce per block half, or reduce-scatter + all-gather over tokens with `sequence_parallel`.
- EP: MoE experts over EP ranks with all-to-all dispatch and combine (shard_moe).
- PP: layers over stages, balanced by attention layers, with Send/Recv between stages (shard_pipeline).
- DP: whole replicas on other requests; counted in the plan (devices = tp*ep*pp*dp), no graph change.

As a pipeline pass (`shard{tp=2}`) it returns rank 0's graph with the plan in `metadata["parallel"]`;
`shard_graph` returns every rank.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import IRError
from ..graph import Graph
from ..sharded import ShardedProgram
from .base import Pass, register_pass
from .shard_attention import plan_attention
from .shard_layout import RankRebuild, WeightSlice, localize_inputs
from .shard_mlp import plan_mlp, plan_output_projection
from . import shard_fused, shard_mla, shard_moe, shard_rules  # noqa: F401  (register their rules)
from .shard_pipeline import split_stages


def shard_graph(graph: Graph, tp: int = 1, ep: int = 1, pp: int = 1, dp: int = 1,
                sequence_parallel: bool = False, data_parallel_attention: bool = False) -> ShardedProgram:
    """Split `graph` into tp*ep*pp rank graphs (see the module docstring); sizes that do not divide the
    model raise IRError naming the op, the dimension and the legal sizes.

    `sequence_parallel`: row-parallel outputs are reduce-scattered over tokens and all-gathered before
    the next column-parallel projection (Megatron SP). `data_parallel_attention`: the requests (batch,
    axis 0 of every input) are split over the tp ranks (or the ep ranks when tp == 1) and attention runs
    whole on each rank's own requests (DeepSeek's MLA deployment) instead of splitting heads."""
    plan = {"tp": tp, "ep": ep, "pp": pp, "dp": dp}
    for k, n in plan.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise IRError(f"shard: {k} must be an integer >= 1, got {n!r}")
    batch_group = None
    if data_parallel_attention:
        if tp > 1 and ep > 1:
            raise IRError("shard: data_parallel_attention splits requests over one group: use tp > 1 or ep > 1, "
                          f"not both (got tp={tp}, ep={ep})")
        batch_group = "tp" if tp > 1 else "ep" if ep > 1 else None
    stages, stage_outputs = split_stages(graph, pp)
    notes: list[str] = []
    rank_graphs: list[Graph] = []
    input_slices: list[dict] = []
    layouts: dict[int, list] = {}                            # rank -> its stage-output layouts
    for stage, sg in enumerate(stages):
        slices: dict[str, WeightSlice] = {}
        if tp > 1 and batch_group is None:
            notes += plan_attention(sg, tp, slices)
            notes += shard_mla.plan_mla(sg, tp, slices)
        if ep > 1:
            notes += shard_moe.plan_moe(sg, ep, slices)
        if tp > 1:
            notes += plan_mlp(sg, tp, slices)
            notes += plan_output_projection(sg, tp, slices)
        for e in range(ep):
            for t in range(tp):
                rb = RankRebuild(sg, {"tp": t, "ep": e}, {"tp": tp, "ep": ep, "tp*ep": tp * ep}, slices,
                                 sequence_parallel, batch_group)
                g = rb.run()
                g.name = f"{graph.name}_rank{len(rank_graphs)}"
                g.metadata["parallel"] = dict(plan, rank=len(rank_graphs), stage=stage)
                g.dead_code_elimination()
                input_slices.append(localize_inputs(g))
                layouts[len(rank_graphs)] = rb.output_layouts
                try:
                    g.verify()
                except IRError as err:
                    raise IRError(f"shard: rank {len(rank_graphs)} graph is invalid: {err}") from err
                if e == 0 and t == 0:
                    notes += (rb.notes if stage == 0 else []) + _unsplit_heads(sg, g, tp, batch_group)
                rank_graphs.append(g)
    tp_ep = tp * ep
    output_sources = [(stage * tp_ep, j) for stage, j in stage_outputs]
    output_shards = {}
    for i, (stage, j) in enumerate(stage_outputs):
        ranks = range(stage * tp_ep, (stage + 1) * tp_ep)
        lays = [layouts[r][j] for r in ranks]
        if lays[0] is not None:
            output_shards[i] = (lays[0].axis, [(r, j, lay.start, lay.stop) for r, lay in zip(ranks, lays)])
    return ShardedProgram(plan, rank_graphs, [v.name for v in graph.inputs], output_sources, notes,
                          output_shards, input_slices)


def _unsplit_heads(stage: Graph, rank: Graph, tp: int, batch_group: str | None) -> list[str]:
    """Say so where an attention planned for a head split still runs every head on the rank (its query
    could not be traced back to the projection weights): correct, but the planned heads note is not."""
    if tp == 1 or batch_group is not None:
        return []
    got = {n.name: n.spec.num_heads for n in rank.attention_ops() if n.op.op_name == "Attention"}
    return [f"'{n.name}': head split not applied, all {n.spec.num_heads} heads run replicated on every tp rank"
            for n in stage.attention_ops() if n.op.op_name == "Attention" and got.get(n.name) == n.spec.num_heads
            and not (n.spec.features_list() and getattr(n.spec.kv_source, "kind", None) != "mla")]


@register_pass
@dataclass(frozen=True)
class Shard(Pass):
    """Partition over tp/ep/pp/dp ranks; as a pass, keep rank 0's program (see shard_graph for all ranks)."""

    name: ClassVar[str] = "shard"
    tp: int = 1
    ep: int = 1
    pp: int = 1
    dp: int = 1
    sequence_parallel: bool = False
    data_parallel_attention: bool = False

    def run(self, graph: Graph) -> Graph:
        program = shard_graph(graph, self.tp, self.ep, self.pp, self.dp, self.sequence_parallel,
                              self.data_parallel_attention)
        return program.rank_graphs[0]
