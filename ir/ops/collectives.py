"""Collective communication ops: AllReduce, AllGather, ReduceScatter, AllToAll, Send, Recv.

A collective runs on every rank of a `group` ("tp", "ep", "pp", or "tp*ep": all tensor- and
expert-parallel ranks of one pipeline stage) of `ranks` members; each rank's graph holds its own
node and the types below are the per-rank types. Output types are static, so the bytes a
collective moves are known from the graph alone (`message_bytes`, in the nccl-tests "size"
convention that bus-bandwidth formulas use). Send/Recv are point-to-point between pipeline
stages: Send returns the tensor it sent (so the graph keeps it live and its bytes are visible),
Recv produces a tensor of a declared type.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..dims import Dim
from ..errors import require
from ..types import DTYPE_BYTES, DTYPES, TensorType
from .base import Op, input_types, normalize_axis, register_op

GROUPS = ("tp", "ep", "pp", "tp*ep")
REDUCTIONS = ("sum", "max", "min")


def _check_common(op, node) -> None:
    require(isinstance(op.ranks, int) and op.ranks >= 1, node, f"ranks must be an int >= 1, got {op.ranks!r}")
    require(op.group in GROUPS, node, f"unknown group {op.group!r}; supported: {', '.join(GROUPS)}")
    if hasattr(op, "reduce"):
        require(op.reduce in REDUCTIONS, node, f"unknown reduction {op.reduce!r}; supported: {', '.join(REDUCTIONS)}")


def _split_dim(d: Dim, ranks: int, node, what: str) -> Dim:
    """d / ranks, requiring exact division when d is static."""
    if isinstance(d, int):
        require(d % ranks == 0, node, f"{what} of size {d} does not divide over {ranks} ranks")
        return d // ranks
    return D.floordiv(d, ranks)


class Collective(Op):
    """Marker base: the interpreter pauses a rank at these until its whole group arrives."""

    is_collective: ClassVar[bool] = True


@register_op
@dataclass(frozen=True)
class AllReduce(Collective):
    """Every rank gets the elementwise `reduce` of all ranks' inputs (same shape in and out)."""

    ranks: int = 1
    reduce: str = "sum"
    group: str = "tp"
    op_name: ClassVar[str] = "AllReduce"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        _check_common(self, node)
        (x,) = input_types(node)
        return [x]


@register_op
@dataclass(frozen=True)
class AllGather(Collective):
    """Every rank gets all ranks' inputs concatenated along `axis`, in rank order."""

    ranks: int = 1
    axis: int = 0
    group: str = "tp"
    op_name: ClassVar[str] = "AllGather"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        _check_common(self, node)
        (x,) = input_types(node)
        ax = normalize_axis(self.axis, x.rank, node)
        shape = list(x.shape)
        shape[ax] = D.mul(self.ranks, shape[ax])
        return [x.with_shape(shape)]


@register_op
@dataclass(frozen=True)
class ReduceScatter(Collective):
    """The `reduce` of all ranks' inputs, split along `axis`: rank i keeps block i."""

    ranks: int = 1
    axis: int = 0
    reduce: str = "sum"
    group: str = "tp"
    op_name: ClassVar[str] = "ReduceScatter"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        _check_common(self, node)
        (x,) = input_types(node)
        ax = normalize_axis(self.axis, x.rank, node)
        shape = list(x.shape)
        shape[ax] = _split_dim(shape[ax], self.ranks, node, f"axis {ax}")
        return [x.with_shape(shape)]


@register_op
@dataclass(frozen=True)
class AllToAll(Collective):
    """Each rank splits its input into `ranks` blocks along `split_axis`, sends block j to rank j, and
    concatenates the blocks it receives (in source-rank order) along `concat_axis`."""

    ranks: int = 1
    split_axis: int = 0
    concat_axis: int = 0
    group: str = "ep"
    op_name: ClassVar[str] = "AllToAll"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        _check_common(self, node)
        (x,) = input_types(node)
        sa = normalize_axis(self.split_axis, x.rank, node)
        ca = normalize_axis(self.concat_axis, x.rank, node)
        shape = list(x.shape)
        shape[sa] = _split_dim(shape[sa], self.ranks, node, f"split axis {sa}")
        shape[ca] = D.mul(self.ranks, shape[ca])
        return [x.with_shape(shape)]


@register_op
@dataclass(frozen=True)
class Send(Collective):
    """Send the input to the same-coordinate rank of pipeline stage `peer_stage`; returns the input."""

    peer_stage: int = 0
    group: str = "pp"
    op_name: ClassVar[str] = "Send"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        require(isinstance(self.peer_stage, int) and self.peer_stage >= 0, node,
                f"peer_stage must be an int >= 0, got {self.peer_stage!r}")
        require(self.group == "pp", node, f"Send runs between pipeline stages (group 'pp'), got {self.group!r}")
        (x,) = input_types(node)
        return [x]


@register_op
@dataclass(frozen=True)
class Recv(Collective):
    """Receive a tensor of `dtype` and `shape` from the same-coordinate rank of stage `peer_stage`."""

    peer_stage: int = 0
    shape: tuple[Dim, ...] = ()
    dtype: str = "float32"
    group: str = "pp"
    op_name: ClassVar[str] = "Recv"
    num_inputs: ClassVar = (0, 0)

    def infer(self, node):
        require(isinstance(self.peer_stage, int) and self.peer_stage >= 0, node,
                f"peer_stage must be an int >= 0, got {self.peer_stage!r}")
        require(self.group == "pp", node, f"Recv runs between pipeline stages (group 'pp'), got {self.group!r}")
        require(self.dtype in DTYPES, node, f"unknown dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        return [TensorType(self.dtype, self.shape)]


COLLECTIVE_OPS = ("AllReduce", "AllGather", "ReduceScatter", "AllToAll", "Send", "Recv")


def message_bytes(node) -> Dim:
    """Bytes of one collective node in the nccl-tests "size" convention (what bus bandwidth is quoted
    against): all-reduce the buffer, all-gather the gathered output, reduce-scatter and all-to-all the
    full input, send/recv the tensor. Symbolic when the shape is."""
    op = node.op
    require(op.op_name in COLLECTIVE_OPS, node, f"not a collective op: {op.op_name}")
    t = node.outputs[0].type if op.op_name in ("AllGather", "Recv") else node.inputs[0].type
    return D.mul(DTYPE_BYTES[t.dtype], t.numel())
