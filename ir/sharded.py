"""ShardedProgram: one graph split over tp x ep x pp ranks (dp replicas are identical and only counted).

Ranks are numbered tp-fastest: rank = (stage * ep + ep_index) * tp + tp_index. Every rank graph names
its inputs like the unsharded graph's inputs (a rank takes the subset it reads), and `output_sources`
says which rank output holds each of the unsharded graph's outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .errors import IRError
from .graph import Graph


@dataclass
class ShardedProgram:
    """The rank programs of a sharded graph and how they fit together."""

    plan: dict[str, int]                       # {"tp": .., "ep": .., "pp": .., "dp": ..}
    rank_graphs: list[Graph]                   # one per tp*ep*pp rank
    input_names: list[str]                     # the unsharded graph's inputs, in order
    output_sources: list[tuple[int, int]]      # unsharded output i = rank_graphs[r].outputs[j]
    notes: list[str] = field(default_factory=list)  # decisions a reader should know (replicated KV heads, ...)
    # outputs left split on their ranks: output i -> (axis, [(rank, output index, start, stop), ...])
    output_shards: dict[int, tuple[int, list[tuple[int, int, int, int]]]] = field(default_factory=dict)
    # per rank: inputs it receives as a block of the unsharded input {name: (axis, start, stop)}
    input_slices: list[dict[str, tuple[int, int, int]]] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        """Number of rank programs (tp * ep * pp); dp multiplies devices, not programs."""
        return self.plan["tp"] * self.plan["ep"] * self.plan["pp"]

    @property
    def devices(self) -> int:
        """Devices the deployment uses: tp * ep * pp * dp."""
        return self.world_size * self.plan.get("dp", 1)

    def rank_coords(self, rank: int) -> dict[str, int]:
        """{"tp": i, "ep": j, "pp": stage} of `rank`."""
        if not 0 <= rank < self.world_size:
            raise IRError(f"rank {rank} out of range: the program has {self.world_size} ranks")
        tp, ep = self.plan["tp"], self.plan["ep"]
        return {"tp": rank % tp, "ep": (rank // tp) % ep, "pp": rank // (tp * ep)}

    def stage_of(self, rank: int) -> int:
        """The pipeline stage `rank` runs."""
        return self.rank_coords(rank)["pp"]

    def rank_of(self, tp: int = 0, ep: int = 0, pp: int = 0) -> int:
        """The rank at coordinates (tp, ep, pp)."""
        return (pp * self.plan["ep"] + ep) * self.plan["tp"] + tp

    def group_ranks(self, rank: int, group: str) -> list[int]:
        """The ranks of `rank`'s collective group ("tp", "ep", "tp*ep"), in group order."""
        c = self.rank_coords(rank)
        tp, ep = self.plan["tp"], self.plan["ep"]
        if group == "tp":
            return [self.rank_of(t, c["ep"], c["pp"]) for t in range(tp)]
        if group == "ep":
            return [self.rank_of(c["tp"], e, c["pp"]) for e in range(ep)]
        if group == "tp*ep":
            return [self.rank_of(t, e, c["pp"]) for e in range(ep) for t in range(tp)]
        raise IRError(f"unknown collective group {group!r}; supported: tp, ep, tp*ep (pp is point-to-point)")

    def peer(self, rank: int, stage: int) -> int:
        """The rank of pipeline stage `stage` with `rank`'s tp and ep coordinates."""
        c = self.rank_coords(rank)
        if not 0 <= stage < self.plan["pp"]:
            raise IRError(f"stage {stage} out of range: the program has {self.plan['pp']} pipeline stages")
        return self.rank_of(c["tp"], c["ep"], stage)

    def rank_inputs(self, rank: int, inputs: dict) -> dict:
        """The arrays rank `rank` receives, by name, from the unsharded inputs (its blocks where it holds one)."""
        cuts = self.input_slices[rank] if self.input_slices else {}
        out = {}
        for v in self.rank_graphs[rank].inputs:
            a = inputs[v.name]
            if v.name in cuts:
                axis, start, stop = cuts[v.name]
                idx = [slice(None)] * a.ndim
                idx[axis] = slice(start, stop)
                a = a[tuple(idx)]
            out[v.name] = a
        return out

    def collectives(self, rank: int = 0) -> list[dict]:
        """The collective ops rank `rank` runs, in order: node, op, group, ranks, and the bytes moved in
        nccl-tests' "size" convention (ir.ops.collectives.message_bytes; symbolic when the shape is)."""
        from .ops.collectives import message_bytes

        out = []
        for n in self.rank_graphs[rank].topological():
            if getattr(n.op, "is_collective", False):
                out.append({"node": n.name, "op": n.op.op_name, "group": n.op.group,
                            "ranks": getattr(n.op, "ranks", 2), "bytes": message_bytes(n),
                            "source": n.source})
        return out

    def manifest(self) -> dict:
        """Plain-data description of the plan (for an export's manifest.json): per rank its coordinates,
        stage, graph name, input blocks and collectives; how outputs assemble."""
        from .ops.collectives import message_bytes

        ranks = []
        for r, g in enumerate(self.rank_graphs):
            colls = [{"node": n.name, "op": n.op.op_name, **n.op.attrs(), "bytes": _plain(message_bytes(n))}
                     for n in g.topological() if getattr(n.op, "is_collective", False)]
            ranks.append({"rank": r, **self.rank_coords(r), "graph": g.name,
                          "inputs": [v.name for v in g.inputs],
                          "input_slices": {k: list(v) for k, v in (self.input_slices[r] if self.input_slices
                                                                   else {}).items()},
                          "collectives": colls})
        return {"plan": dict(self.plan), "world_size": self.world_size, "devices": self.devices,
                "inputs": list(self.input_names), "ranks": ranks,
                "outputs": [{"rank": r, "index": j} for r, j in self.output_sources],
                "output_shards": {str(i): {"axis": axis, "blocks": [list(b) for b in blocks]}
                                  for i, (axis, blocks) in self.output_shards.items()},
                "notes": list(self.notes)}


def _plain(d):
    return d if isinstance(d, int) else str(d)
