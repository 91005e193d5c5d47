"""Scans: aten.cumsum (HF transformers builds position ids and padding masks with it)."""
from __future__ import annotations

from ...ir.ops import CumSum
from . import register_torch_converter


@register_torch_converter("aten.cumsum.default")
def _cumsum(ctx, args):
    """cumsum(self, dim, dtype=None): accumulate in the output dtype torch recorded (the `dtype`
    argument, or int64 for bool/integer inputs, as torch promotes them)."""
    x = args["self"]
    rank = ctx.rank_of(x)
    if rank == 0:  # torch treats a 0-d tensor as one element: cumsum is the value itself
        return ctx.value(x, ctx.out_dtype())
    return ctx.emit(CumSum(axis=ctx.axis(args["dim"], rank)), [ctx.value(x, ctx.out_dtype())])
