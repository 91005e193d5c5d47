"""Per-rank rebuild of a graph from planned weight slices: how a split flows through ops.

A value on one rank is either replicated (layout None: the whole tensor, as in the unsharded graph)
or a `Split`: the block [start, stop) of `axis`, owned by one member of a parallel group. Planning
(shard_attention, shard_mlp, shard_moe) decides which weight constants are sliced; this module
re-emits every node for one rank, propagating splits forward with the op rules (shard_rules), slicing
replicated operands locally where an op needs the block (free: no communication) and inserting
collectives where a split must end: a row-parallel Linear's partial sums (AllReduce, or ReduceScatter
over tokens when sequence-parallel), and an AllGather before any op with no rule for its split (a
correct fallback, recorded in `notes`). Types are re-inferred, so every shape follows the slices.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import IRError
from ..graph import Graph, Node, Value
from ..ops import AllGather, AllReduce, ReduceScatter, Slice

ELEMENTWISE = ("Unary", "Activation", "Binary", "Where", "Cast")


@dataclass(frozen=True)
class Split:
    """This rank holds [start, stop) of `axis` (of `full`); it is member `index` of a `ranks`-member group."""

    axis: int
    start: int
    stop: int
    full: int
    group: str
    ranks: int
    index: int

    @property
    def even(self) -> bool:
        size = self.stop - self.start
        return size * self.ranks == self.full and self.start == self.index * size

    def at(self, axis: int) -> "Split":
        return dataclasses.replace(self, axis=axis)

    def same_block(self, other: "Split") -> bool:
        return (self.axis, self.start, self.stop, self.group) == (other.axis, other.start, other.stop, other.group)


@dataclass(frozen=True)
class Partial:
    """This rank holds one term of a sum over the `ranks` members of `group` (expert outputs before
    the combine). Linear ops keep it (shard_moe.partial_rule); anything else combines it first."""

    group: str
    ranks: int
    index: int


@dataclass(frozen=True)
class Pieces:
    """This rank holds several blocks of `axis`, concatenated in order (a fused QKV projection's
    output: its Q heads, then its K heads, then its V heads); `by_rank` lists every member's blocks."""

    axis: int
    by_rank: tuple[tuple[tuple[int, int], ...], ...]
    full: int
    group: str
    ranks: int
    index: int

    @property
    def blocks(self) -> tuple[tuple[int, int], ...]:
        return self.by_rank[self.index]

    def at(self, axis: int) -> "Pieces":
        return dataclasses.replace(self, axis=axis)


def blocks_of(entry) -> tuple[tuple[int, int], ...]:
    """A rank's planned range as blocks: (start, stop) -> ((start, stop),); several stay as they are."""
    return (tuple(entry),) if isinstance(entry[0], int) else tuple(tuple(b) for b in entry)


def entry_of(blocks) -> tuple:
    """Inverse of blocks_of: one block is written (start, stop)."""
    return tuple(blocks[0]) if len(blocks) == 1 else tuple(blocks)


@dataclass(frozen=True)
class WeightSlice:
    """Planned slice of a weight constant: along `axis`, group member i keeps ranges[i], a (start, stop)
    or several blocks ((start, stop), ...) concatenated in order."""

    axis: int
    ranges: tuple[tuple[int, int], ...]
    group: str


def weight_blocks(arr: np.ndarray, axis: int, blocks) -> np.ndarray:
    """The blocks of `arr` along `axis`, concatenated (a weight without data stays zero-stride)."""
    if len(blocks) == 1:
        return weight_block(arr, axis, *blocks[0])
    if 0 in arr.strides and arr.size > 1:
        shape = list(arr.shape)
        shape[axis] = sum(b - a for a, b in blocks)
        return np.broadcast_to(np.zeros((), arr.dtype), tuple(shape))
    return np.concatenate([weight_block(arr, axis, a, b) for a, b in blocks], axis=axis)


def weight_block(arr: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """arr[start:stop] along `axis`, copied into its own buffer, except a weight without data (the
    zero-stride stand-in a meta-device import makes) stays a view: slicing it must not allocate it."""
    idx = [slice(None)] * arr.ndim
    idx[axis] = slice(start, stop)
    block = arr[tuple(idx)]
    return block if 0 in arr.strides and arr.size > 1 else np.ascontiguousarray(block)


# op name -> rule(rebuild, node, inputs) -> [(value, layout)] for the node's outputs
RULES: dict[str, Callable] = {}
# rule for a node reading a Partial value; set by shard_moe (None -> combine the partial first)
PARTIAL_RULE: list[Callable] = [lambda rb, node, ins: None]
# rule for a node reading a Pieces value; set by shard_fused (None -> gather it whole first)
PIECES_RULE: list[Callable] = [lambda rb, node, ins: None]


def rule(*names: str):
    def deco(fn):
        for n in names:
            RULES[n] = fn
        return fn
    return deco


class RankRebuild:
    """Re-emit `graph` for the rank with group indices `index` ({"tp": i, "ep": j}) under `slices`."""

    def __init__(self, graph: Graph, index: dict[str, int], sizes: dict[str, int],
                 slices: dict[str, WeightSlice], sequence_parallel: bool = False, batch_group: str | None = None):
        self.old, self.index, self.sizes, self.slices, self.sp = graph, index, sizes, slices, sequence_parallel
        self.batch_group = batch_group        # data-parallel attention: requests (axis 0) split over this group
        self.g = Graph(graph.name, diagnostics=[dict(d) for d in graph.diagnostics], metadata=dict(graph.metadata))
        self.env: dict[int, tuple[Value, Split | None]] = {}
        self.notes: list[str] = []
        self.node: Node | None = None
        self.gathered: dict[int, Value] = {}

    def run(self) -> Graph:
        for v in self.old.inputs:
            self.env[id(v)] = self.split_requests(v, self.g.add_input(v.name, v.dtype, v.shape))
        for node in self.old.topological():
            self.node = node
            ins = [None if v is None else self.env[id(v)] for v in node.inputs]
            outs = None
            if any(x is not None and isinstance(x[1], Partial) for x in ins):
                outs = PARTIAL_RULE[0](self, node, ins)
                if outs is None:
                    ins = [x if x is None or not isinstance(x[1], Partial) else self.combine(x) for x in ins]
            if outs is None and any(x is not None and isinstance(x[1], Pieces) for x in ins):
                outs = PIECES_RULE[0](self, node, ins)
                if outs is None:
                    ins = [x if x is None or not isinstance(x[1], Pieces) else (self.replicated(x), None)
                           for x in ins]
            fn = RULES.get(node.op.op_name)
            if outs is None and fn is not None:
                outs = fn(self, node, ins)
            if outs is None:
                outs = [(v, None) for v in self.emit(node, node.op, [self.replicated(x) for x in ins])]
            for old, new in zip(node.outputs, outs):
                self.env[id(old)] = new
        self.node = None
        # a split output stays on its ranks (each keeps its KV-cache heads, its requests' logits);
        # the ShardedProgram records how the blocks assemble into the unsharded output
        self.output_layouts: list[Split | None] = []
        for v in self.old.outputs:
            val, lay = self.env[id(v)]
            self.output_layouts.append(lay if isinstance(lay, Split) else None)
            self.g.outputs.append(val if isinstance(lay, Split) else self.replicated((val, lay)))
        return self.g

    def split_requests(self, old: Value, new: Value) -> tuple[Value, Split | None]:
        """With data-parallel attention each rank serves its block of the batch (axis 0): a free Slice."""
        if self.batch_group is None or old.rank < 2 or old.shape[0] == 1:
            return new, None
        n, ranks = old.shape[0], self.sizes[self.batch_group]
        if not isinstance(n, int) or n % ranks:
            raise IRError(f"data-parallel attention splits the batch of input '{old.name}' ({n}) over {ranks} "
                          f"{self.batch_group} ranks; legal sizes: "
                          f"{[d for d in range(1, n + 1) if n % d == 0] if isinstance(n, int) else 'a static batch'}")
        lay = self.split_of(self.batch_group, 0, n, self.index[self.batch_group] * (n // ranks),
                            (self.index[self.batch_group] + 1) * (n // ranks))
        return self.g.add1(Slice(0, lay.start, lay.stop), [new], name=f"{old.name}_requests"), lay

    # ---- building blocks ------------------------------------------------------------------
    def emit(self, node: Node, op, inputs: list[Value | None], suffix: str = "") -> list[Value]:
        return self.g.add(op, inputs, name=node.name + suffix, source=node.source)

    def emit1(self, op, inputs: list[Value], hint: str) -> Value:
        node = self.node                        # None while the graph outputs are finished
        return self.g.add1(op, inputs, name=f"{node.name}_{hint}" if node else hint,
                           source=node.source if node else None)

    def split_of(self, group: str, axis: int, full: int, start: int, stop: int) -> Split:
        return Split(axis, start, stop, full, group, self.sizes[group], self.index[group])

    def replicated(self, item) -> Value | None:
        """The whole tensor: an AllGather of an even split (an uneven one is an error)."""
        if item is None:
            return None
        v, lay = item
        if lay is None:
            return v
        if isinstance(lay, Partial):
            return self.emit1(AllReduce(lay.ranks, "sum", lay.group), [v], f"allreduce_{v.name}")
        if v.producer is not None and v.producer.op.op_name == "Constant" and v.producer.op.key in self.old.constants:
            key = v.producer.op.key                     # a sliced weight also read whole (a shared bias): no gather
            return self.g.add_constant(self.old.constants[key], name=f"{key}_whole")
        if isinstance(lay, Pieces):
            from .shard_fused import whole

            return whole(self, v, lay)
        if not lay.even:
            raise IRError(f"value '{v.name}' is split unevenly over {lay.group} (rank block [{lay.start}, {lay.stop}) "
                          f"of {lay.full}) and the op after it has no rule for that split; supported: ops that "
                          "keep the split (elementwise, Attention, row-parallel Linear)", self.node)
        if self.node is not None:
            self.notes.append(f"all-gather of '{v.name}' over {lay.group} before {self.node.op.op_name} "
                              f"'{self.node.name}' (no split rule for it)")
        return self.gather(v, lay)

    def combine(self, item) -> tuple[Value, Split | None]:
        """Finish a Partial: an all-to-all combine that leaves each rank the summed block of its rows
        (first axis whose size divides the group), else an all-reduce."""
        from .shard_moe import combine

        return combine(self, *item)

    def gather(self, v: Value, lay: Split) -> Value:
        """AllGather of an even split, once per value however many ops read it whole."""
        if id(v) not in self.gathered:
            op = AllGather(lay.ranks, lay.axis, lay.group)
            self.gathered[id(v)] = self.g.add1(op, [v], name=f"{v.name}_allgather",
                                               source=None if self.node is None else self.node.source)
        return self.gathered[id(v)]

    def local_block(self, item, lay: Split) -> Value:
        """`item` cut to the block `lay` describes: constants are sliced, other replicated values get a
        Slice (free); a value split another way is gathered first."""
        v, have = item
        if have is not None:
            if have.same_block(lay):
                return v
            v = self.replicated(item)
        if v.shape[lay.axis] == 1:  # broadcasts: every block sees the same row
            return v
        p = v.producer
        if p is not None and p.op.op_name == "Constant" and have is None:
            arr = self.old.constants.get(p.op.key)
            if arr is None:
                arr = self.g.constants[p.op.key]
            return self.g.add_constant(weight_block(arr, lay.axis, lay.start, lay.stop), name=f"{p.op.key}_r{lay.index}")
        return self.emit1(Slice(lay.axis, lay.start, lay.stop), [v], f"slice_{v.name}")

    def reduce_partial(self, v: Value, group: str) -> tuple[Value, Split | None]:
        """End a row-parallel partial sum: AllReduce, or ReduceScatter over tokens (axis -2) when sequence-parallel."""
        ranks = self.sizes[group]
        tokens = v.rank - 2
        if self.sp and group == "tp" and v.rank >= 2 and isinstance(v.shape[tokens], int) \
                and v.shape[tokens] % ranks == 0:
            out = self.emit1(ReduceScatter(ranks, tokens, "sum", group), [v], "reducescatter")
            size = v.shape[tokens] // ranks
            return out, self.split_of(group, tokens, v.shape[tokens], self.index[group] * size,
                                      (self.index[group] + 1) * size)
        if self.sp and group == "tp":
            self.notes.append(f"'{self.node.name}': {v.shape[tokens] if v.rank >= 2 else 1} tokens do not split "
                              f"over tp={ranks}: all-reduce instead of reduce-scatter")
        return self.emit1(AllReduce(ranks, "sum", group), [v], "allreduce"), None


def localize_inputs(g: Graph) -> dict[str, tuple[int, int, int]]:
    """Give a rank graph the block of an input it only ever slices one way (its KV-cache heads, its
    requests) as its input, so the rank's inputs are what that device holds; returns the slices taken
    ({input name: (axis, start, stop)}) for the runner to cut the unsharded inputs the same way."""
    taken = {}
    outputs = {id(v) for v in g.outputs}
    for i, v in enumerate(list(g.inputs)):
        users = g.consumers(v)
        if not users or id(v) in outputs or any(n.op.op_name != "Slice" or n.op.step != 1 for n in users):
            continue
        cuts = {(n.op.axis % v.rank, n.op.start, n.op.stop) for n in users}
        if len(cuts) != 1:
            continue
        axis, start, stop = next(iter(cuts))
        if not (isinstance(v.shape[axis], int) and isinstance(start, int) and isinstance(stop, int)):
            continue
        local = Value(v.name, v.type.with_shape(users[0].outputs[0].shape))
        for n in users:
            g.replace_all_uses(n.outputs[0], local)
        g.nodes = [n for n in g.nodes if all(n is not u for u in users)]
        g.inputs[i] = local
        taken[v.name] = (axis, start, stop)
    return taken
