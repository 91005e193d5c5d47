"""Convolution and pooling over 1-D (NCL) and 2-D (NCHW) inputs, with torch / ONNX semantics.

Convolution(x, weight[, bias]): weight is (C_out, C_in/groups, *kernel), bias (C_out,). Pool: max or
average windows, or adaptive average pooling to `output_size` when every input size is a multiple of it
(global average pooling is output_size (1,) / (1, 1)). Padding is per side: one (before, after) pair per
spatial dim, so ONNX's asymmetric `pads` and auto_pad SAME_* are expressed exactly.
Spatial output sizes of a symbolic input dim are only representable for stride 1 (dims are polynomials).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .. import dims as D
from ..dims import Dim
from ..errors import require
from .base import Op, input_types, register_op

SPATIAL_RANKS = (1, 2)


def _check_spatial(node, name: str, values: tuple, rank: int, minimum: int) -> None:
    require(isinstance(values, tuple) and len(values) == rank and all(isinstance(v, int) for v in values), node,
            f"{name} must hold {rank} int(s) (one per spatial dim), got {values!r}")
    require(all(v >= minimum for v in values), node, f"{name} values must be >= {minimum}, got {values!r}")


def _check_padding(node, padding: tuple, rank: int) -> None:
    ok = isinstance(padding, tuple) and len(padding) == rank and all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, int) and v >= 0 for v in p) for p in padding)
    require(ok, node, f"padding must be {rank} (before, after) pair(s) of non-negative ints, got {padding!r}")


def window_output_size(size: Dim, kernel: int, stride: int, pad: tuple[int, int], dilation: int,
                       ceil_mode: bool = False, node=None) -> Dim:
    """Output length of a sliding window (torch's rule, incl. ceil_mode's 'last window starts inside')."""
    span = dilation * (kernel - 1) + 1
    if isinstance(size, int):
        room = size + pad[0] + pad[1] - span
        require(room >= 0, node, f"window of span {span} does not fit input size {size} with padding {pad}")
        out = (-(-room // stride) if ceil_mode else room // stride) + 1
        if ceil_mode and (out - 1) * stride >= size + pad[0]:
            out -= 1  # the last window would start in the right padding
        return out
    require(stride == 1, node, f"a symbolic spatial size {size!r} needs stride 1 (got {stride}): its output size "
            "(size + pads - span) // stride + 1 is not a polynomial; export with a static size")
    return D.add(size, pad[0] + pad[1] - span + 1)


@register_op
@dataclass(frozen=True)
class Convolution(Op):
    """N-d cross-correlation as torch.nn.functional.conv1d/conv2d and ONNX Conv.

    Inputs (x, weight[, bias]); x (N, C_in, *spatial), weight (C_out, C_in/groups, *kernel), bias (C_out,).
    stride / dilation: one int per spatial dim; padding: one (before, after) pair per spatial dim;
    groups divides C_in and C_out (groups == C_in == C_out/m is depthwise).
    """

    stride: tuple[int, ...] = (1, 1)
    padding: tuple[tuple[int, int], ...] = ((0, 0), (0, 0))
    dilation: tuple[int, ...] = (1, 1)
    groups: int = 1
    op_name: ClassVar[str] = "Convolution"
    num_inputs: ClassVar = (2, 3)

    @classmethod
    def make(cls, rank: int, stride=1, padding=0, dilation=1, groups: int = 1) -> "Convolution":
        """Build with ints broadcast per spatial dim; `padding` an int, one int per dim (symmetric) or pairs."""
        return cls(_per_dim(stride, rank), _pairs(padding, rank), _per_dim(dilation, rank), int(groups))

    @property
    def spatial_rank(self) -> int:
        return len(self.stride)

    def infer(self, node):
        ts = input_types(node)
        x, w = ts[0], ts[1]
        rank = x.rank - 2
        require(rank in SPATIAL_RANKS, node, f"convolution supports 1-D (N, C, L) and 2-D (N, C, H, W) inputs, got {x}")
        require(w.rank == x.rank, node, f"weight {w} must be (C_out, C_in/groups, *kernel) of rank {x.rank}")
        require(x.dtype == w.dtype, node, f"input and weight dtypes differ: {x.dtype} vs {w.dtype}")
        _check_spatial(node, "stride", self.stride, rank, 1)
        _check_spatial(node, "dilation", self.dilation, rank, 1)
        _check_padding(node, self.padding, rank)
        require(isinstance(self.groups, int) and self.groups >= 1, node, f"groups must be a positive int, got {self.groups!r}")
        c_out, c_in_g = w.shape[0], w.shape[1]
        require(isinstance(c_out, int) and isinstance(c_in_g, int), node, f"weight {w} must have static channel dims")
        require(c_out % self.groups == 0, node, f"C_out {c_out} is not divisible by groups {self.groups}")
        require(D.equal(x.shape[1], c_in_g * self.groups), node,
                f"input channels {x.shape[1]} != weight's C_in/groups {c_in_g} x groups {self.groups}")
        if len(ts) == 3:
            b = ts[2]
            require(b.rank == 1 and D.equal(b.shape[0], c_out), node, f"bias {b} must be ({c_out},)")
            require(b.dtype == x.dtype, node, f"bias dtype {b.dtype} differs from input dtype {x.dtype}")
        kernel = w.shape[2:]
        require(all(isinstance(k, int) and k >= 1 for k in kernel), node, f"kernel sizes {kernel} must be static ints")
        out = tuple(window_output_size(x.shape[2 + i], kernel[i], self.stride[i], self.padding[i], self.dilation[i],
                                       node=node) for i in range(rank))
        return [x.with_shape((x.shape[0], c_out) + out)]


POOL_KINDS = ("max", "avg")


@register_op
@dataclass(frozen=True)
class Pool(Op):
    """Max or average pooling over the spatial dims of (N, C, L) / (N, C, H, W), as torch max_pool / avg_pool
    and ONNX MaxPool / AveragePool; or adaptive average pooling when `output_size` is given.

    kernel / stride / dilation: one int per spatial dim (dilation only for max); padding: (before, after) pairs
    (padded cells are -inf for max; for avg they count in the divisor only with count_include_pad);
    ceil_mode: torch's ceil rule. output_size (adaptive avg, kernel empty): each input size must be a multiple
    of the output size (output 1 = global average pooling, any input size).
    """

    kind: str = "max"
    kernel: tuple[int, ...] = ()
    stride: tuple[int, ...] = ()
    padding: tuple[tuple[int, int], ...] = ()
    dilation: tuple[int, ...] = ()
    count_include_pad: bool = True
    ceil_mode: bool = False
    output_size: tuple[int, ...] = ()
    op_name: ClassVar[str] = "Pool"
    num_inputs: ClassVar = (1, 1)

    @classmethod
    def make(cls, kind: str, kernel, stride=None, padding=0, dilation=1, count_include_pad: bool = True,
             ceil_mode: bool = False) -> "Pool":
        """A windowed pool with ints broadcast per spatial dim (stride defaults to the kernel, as in torch)."""
        k = tuple(int(v) for v in kernel)
        rank = len(k)
        return cls(kind, k, _per_dim(stride if stride not in (None, (), []) else k, rank), _pairs(padding, rank),
                   _per_dim(dilation, rank), bool(count_include_pad), bool(ceil_mode))

    @classmethod
    def adaptive_avg(cls, output_size) -> "Pool":
        """Adaptive average pooling to `output_size` (one int per spatial dim)."""
        return cls("avg", output_size=tuple(int(v) for v in output_size))

    @property
    def adaptive(self) -> bool:
        return bool(self.output_size)

    def windows(self, spatial: tuple) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(kernel, stride) actually used for these static input sizes (adaptive: size // output_size)."""
        if not self.adaptive:
            return self.kernel, self.stride
        ks = tuple(int(s) // o for s, o in zip(spatial, self.output_size))
        return ks, ks

    def infer(self, node):
        (x,) = input_types(node)
        rank = x.rank - 2
        require(rank in SPATIAL_RANKS, node, f"pooling supports 1-D (N, C, L) and 2-D (N, C, H, W) inputs, got {x}")
        require(self.kind in POOL_KINDS, node, f"kind must be one of {POOL_KINDS}, got {self.kind!r}")
        require(x.is_float, node, f"pooling needs a float input, got {x.dtype}")
        if self.adaptive:
            require(self.kind == "avg", node, "adaptive pooling is supported for average pooling only")
            require(not self.kernel and not self.stride and not self.padding and not self.dilation, node,
                    "adaptive pooling takes output_size only (kernel/stride/padding/dilation must be empty)")
            _check_spatial(node, "output_size", self.output_size, rank, 1)
            for s, o in zip(x.shape[2:], self.output_size):
                require(o == 1 or (isinstance(s, int) and s % o == 0), node,
                        f"adaptive average pooling of size {s!r} to {o}: supported when the input size is a static "
                        "multiple of the output size (or the output is 1); other sizes use uneven windows")
            return [x.with_shape(tuple(x.shape[:2]) + self.output_size)]
        _check_spatial(node, "kernel", self.kernel, rank, 1)
        _check_spatial(node, "stride", self.stride, rank, 1)
        _check_spatial(node, "dilation", self.dilation, rank, 1)
        _check_padding(node, self.padding, rank)
        require(self.kind == "max" or all(d == 1 for d in self.dilation), node,
                f"dilation {self.dilation} is defined for max pooling only")
        for k, p in zip(self.kernel, self.padding):
            require(max(p) < k, node, f"padding {p} must be smaller than the kernel {k} (a window never lies "
                    "wholly in the padding)")
        out = tuple(window_output_size(x.shape[2 + i], self.kernel[i], self.stride[i], self.padding[i],
                                       self.dilation[i], self.ceil_mode, node) for i in range(rank))
        return [x.with_shape(tuple(x.shape[:2]) + out)]


def _per_dim(v, rank: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * rank
    v = tuple(int(x) for x in v)
    return v * rank if len(v) == 1 else v


def _pairs(v, rank: int) -> tuple[tuple[int, int], ...]:
    if isinstance(v, int):
        return ((v, v),) * rank
    v = tuple(v)
    if v and all(isinstance(p, (tuple, list)) for p in v):
        return tuple((int(a), int(b)) for a, b in v)
    flat = _per_dim(v, rank)
    return tuple((p, p) for p in flat)
