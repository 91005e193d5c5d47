"""The torch converter table: aten overload name -> converter.

A converter is `fn(ctx: TorchContext, args: dict[str, Any]) -> converted output`, where `args`
binds the op's schema argument names (defaults filled in) to already-converted inputs (IR
Values, TorchConsts, numbers, symbolic dims). Keys are overload names as torch prints them,
e.g. "aten.scaled_dot_product_attention.default". Other packages add converters with
`@register_torch_converter("ns.op.overload")` (e.g. "attncc.attention.default").
"""
from __future__ import annotations

from typing import Any, Callable

from .context import TorchConst, TorchContext, TorchImportError

Converter = Callable[[TorchContext, dict[str, Any]], Any]
TORCH_CONVERTERS: dict[str, Converter] = {}


def register_torch_converter(*names: str):
    """Decorator registering `fn` as the converter of each aten overload name in `names`."""

    def deco(fn: Converter) -> Converter:
        for name in names:
            TORCH_CONVERTERS[name] = fn
        return fn

    return deco


# one module per op family; importing registers its converters
from . import (attention, attncc_ops, creation, elementwise, indexing, linalg, norm, scan, scatter,  # noqa: E402,F401
               selection, shape)
from . import conv  # noqa: E402,F401  (convolution and pooling)
from . import moe  # noqa: E402,F401  (MoE routing: sort, histc, scatter.value, grouped_mm)
from . import vision  # noqa: E402,F401  (vector norms, resizing, as_strided, flip: timm's hybrid families)

__all__ = ["TORCH_CONVERTERS", "register_torch_converter", "Converter", "TorchContext", "TorchConst",
           "TorchImportError"]
