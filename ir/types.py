"""Tensor types: dtype plus a shape of ints and symbolic dims."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dims as D
from .dims import Dim

DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int8", "uint8", "bool")
FLOAT_DTYPES = ("float32", "float16", "bfloat16", "float64")

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int64": 8, "int32": 4,
               "int8": 1, "uint8": 1, "bool": 1}


@dataclass(frozen=True)
class TensorType:
    """The static type of a value: dtype and shape (ints or symbolic dims)."""

    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; supported: {', '.join(DTYPES)}")
        object.__setattr__(self, "shape", tuple(D.canonical(d) for d in self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def numel(self) -> Dim:
        return D.product(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))

    def with_dtype(self, dtype: str) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"


def numpy_dtype(dtype: str):
    """The numpy dtype used by the reference interpreter (bfloat16 via ml_dtypes when present)."""
    if dtype == "bfloat16":
        try:
            import ml_dtypes  # ships with TVM; optional for the IR

            return np.dtype(ml_dtypes.bfloat16)
        except ImportError:  # pragma: no cover
            return np.dtype("float32")
    return np.dtype(dtype)


def dtype_of_numpy(dt) -> str:
    """The IR dtype name of a numpy dtype."""
    name = np.dtype(dt).name
    if name not in DTYPES:
        raise ValueError(f"numpy dtype {name} has no IR equivalent; supported: {', '.join(DTYPES)}")
    return name


def broadcast_shapes(*shapes, node=None) -> tuple[Dim, ...]:
    """Numpy broadcasting over symbolic shapes."""
    from .errors import IRError

    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dim: Dim = 1
        for s in shapes:
            j = i - (rank - len(s))
            if j < 0:
                continue
            d = s[j]
            if d == 1:
                continue
            if dim == 1:
                dim = d
            elif not D.equal(dim, d):
                raise IRError(f"shapes {[tuple(x) for x in shapes]} do not broadcast at axis {i}", node)
        out.append(dim)
    return tuple(out)
