"""Data-movement and typing ops: Constant, Reshape, Transpose, Concat, Slice, Gather, Expand, Cast."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..dims import Dim
from ..errors import require
from ..types import DTYPES, TensorType
from .base import Op, input_types, normalize_axis, register_op


@register_op
@dataclass(frozen=True)
class Constant(Op):
    """A parameter or literal tensor stored in `graph.constants[key]`."""

    key: str = ""
    dtype: str = "float32"
    shape: tuple[int, ...] = ()
    op_name: ClassVar[str] = "Constant"
    num_inputs: ClassVar = (0, 0)

    def infer(self, node):
        require(bool(self.key), node, "constant has an empty key")
        return [TensorType(self.dtype, self.shape)]


@register_op
@dataclass(frozen=True)
class Reshape(Op):
    """Reshape to `shape` (ints, symbolic dims, at most one -1)."""

    shape: tuple[Dim, ...] = ()
    op_name: ClassVar[str] = "Reshape"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        (x,) = input_types(node)
        require(sum(1 for d in self.shape if d == -1) <= 1, node, f"reshape target {self.shape} has more than one -1")
        total = x.numel()
        known = D.product([d for d in self.shape if d != -1])
        out = list(self.shape)
        if -1 in self.shape:
            try:
                out[out.index(-1)] = D.floordiv(total, known)
            except ValueError:
                require(False, node, f"cannot infer -1 in reshape of {x} to {self.shape}")
        else:
            require(not (D.is_static(x.shape) and D.is_static(out)) or D.equal(total, known), node,
                    f"reshape of {x} ({total} elements) to {self.shape} ({known} elements) changes the element count")
        return [x.with_shape(out)]


@register_op
@dataclass(frozen=True)
class Transpose(Op):
    """Permute axes: out.shape[i] = x.shape[perm[i]]."""

    perm: tuple[int, ...] = ()
    op_name: ClassVar[str] = "Transpose"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        (x,) = input_types(node)
        require(sorted(self.perm) == list(range(x.rank)), node, f"perm {self.perm} is not a permutation of {x.rank} axes")
        return [x.with_shape([x.shape[p] for p in self.perm])]


@register_op
@dataclass(frozen=True)
class Concat(Op):
    """Concatenate along `axis`."""

    axis: int = 0
    op_name: ClassVar[str] = "Concat"
    num_inputs: ClassVar = (1, None)

    def infer(self, node):
        ts = input_types(node)
        rank = ts[0].rank
        ax = normalize_axis(self.axis, rank, node)
        total: Dim = 0
        for t in ts:
            require(t.rank == rank and t.dtype == ts[0].dtype, node, f"concat inputs differ in rank or dtype: {ts[0]} vs {t}")
            for i in range(rank):
                require(i == ax or D.equal(t.shape[i], ts[0].shape[i]), node,
                        f"concat inputs differ on axis {i}: {ts[0]} vs {t}")
            total = D.add(total, t.shape[ax])
        shape = list(ts[0].shape)
        shape[ax] = total
        return [ts[0].with_shape(shape)]


@register_op
@dataclass(frozen=True)
class Slice(Op):
    """x[start:stop:step] along one axis (negative ints count from the end; stop None = to the end)."""

    axis: int = 0
    start: Dim = 0
    stop: Dim | None = None
    step: int = 1
    op_name: ClassVar[str] = "Slice"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        (x,) = input_types(node)
        ax = normalize_axis(self.axis, x.rank, node)
        require(self.step >= 1, node, f"slice step must be >= 1, got {self.step}")
        n = x.shape[ax]
        length = slice_length(n, self.start, self.stop, self.step)
        require(length is not None, node, f"cannot size slice [{self.start}:{self.stop}:{self.step}] of symbolic dim {n}")
        shape = list(x.shape)
        shape[ax] = length
        return [x.with_shape(shape)]


def slice_length(n: Dim, start: Dim, stop: Dim | None, step: int) -> Dim | None:
    """Length of range(start, stop, step) clipped to a dim of size n; None when undecidable."""
    if isinstance(n, int) and isinstance(start, int) and (stop is None or isinstance(stop, int)):
        return len(range(*slice(start, stop, step).indices(n)))
    stop = n if stop is None else stop
    if isinstance(start, int) and start < 0:
        start = D.add(n, start)
    if isinstance(stop, int) and stop < 0:
        stop = D.add(n, stop)
    if step != 1:
        return None
    return D.add(stop, D.mul(-1, start))


@register_op
@dataclass(frozen=True)
class Gather(Op):
    """Take entries of `data` at integer `indices` along `axis` (embeddings: axis 0)."""

    axis: int = 0
    op_name: ClassVar[str] = "Gather"
    num_inputs: ClassVar = (2, 2)

    def infer(self, node):
        data, idx = input_types(node)
        ax = normalize_axis(self.axis, data.rank, node)
        require(idx.dtype in ("int64", "int32"), node, f"indices must be int64/int32, got {idx.dtype}")
        return [data.with_shape(data.shape[:ax] + idx.shape + data.shape[ax + 1:])]


@register_op
@dataclass(frozen=True)
class IndexCopy(Op):
    """`data` with the slices at positions `index` along `axis` replaced by `source` (torch's index_copy;
    a static KV cache written at `cache_position`). When `data` is a graph input the model mutates (its
    value is also returned through `graph.metadata["input_mutations"]`), backends write in place."""

    axis: int = 0
    op_name: ClassVar[str] = "IndexCopy"
    num_inputs: ClassVar = (3, 3)

    def infer(self, node):
        data, idx, src = input_types(node)
        ax = normalize_axis(self.axis, data.rank, node)
        require(idx.dtype in ("int64", "int32") and idx.rank == 1, node,
                f"index must be a 1-D int64/int32 tensor, got {idx.dtype} rank {idx.rank}")
        want = data.shape[:ax] + (idx.shape[0],) + data.shape[ax + 1:]
        require(src.rank == data.rank and src.dtype == data.dtype, node,
                f"source must be {data.dtype} of rank {data.rank}, got {src.dtype} rank {src.rank}")
        require(all(D.canonical(a) == D.canonical(b) for a, b in zip(src.shape, want)), node,
                f"source shape {src.shape} must be {want}")
        return [data]


@register_op
@dataclass(frozen=True)
class Expand(Op):
    """Broadcast to `shape` (numpy broadcast_to; -1 keeps the input's dim)."""

    shape: tuple[Dim, ...] = ()
    op_name: ClassVar[str] = "Expand"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        (x,) = input_types(node)
        require(len(self.shape) >= x.rank, node, f"cannot expand rank {x.rank} to rank {len(self.shape)}")
        out = list(self.shape)
        off = len(self.shape) - x.rank
        for i, d in enumerate(x.shape):
            t = out[off + i]
            if t == -1:
                out[off + i] = d
            else:
                require(d == 1 or D.equal(d, t), node, f"cannot expand dim {i} of size {d} to {t}")
        require(-1 not in out, node, f"-1 in expand shape {self.shape} at a new leading axis")
        return [x.with_shape(out)]


@register_op
@dataclass(frozen=True)
class Cast(Op):
    """Convert to `dtype`."""

    dtype: str = "float32"
    op_name: ClassVar[str] = "Cast"
    num_inputs: ClassVar = (1, 1)

    def infer(self, node):
        require(self.dtype in DTYPES, node, f"unknown cast dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        (x,) = input_types(node)
        return [x.with_dtype(self.dtype)]
