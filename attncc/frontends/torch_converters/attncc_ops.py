"""torch.ops.attncc.attention (attncc.nn's custom op) -> one Attention op carrying the same spec.

The op's string argument is the AttentionSpec as JSON, so the variant (MLA, HiLo, MoH, ...) crosses
torch.export as data and becomes exactly the spec the module was built with.
"""
from __future__ import annotations

import json

from ...ir.errors import IRError
from ...ir.ops import Attention, AttentionSpec
from ...ir.ops.attention_spec import SpecError
from . import register_torch_converter


@register_torch_converter("attncc.attention.default")
def _attncc_attention(ctx, args):
    try:
        spec = AttentionSpec.from_dict(json.loads(args["spec"]))
    except (SpecError, ValueError, TypeError, KeyError) as e:
        raise ctx.error(f"invalid attncc::attention spec: {e}") from e
    tensors = list(args["inputs"])
    names = spec.input_names()
    if len(tensors) != len(names):
        raise ctx.error(f"spec {spec.summary()!r} takes inputs {list(names)}, got {len(tensors)} tensors")
    try:
        return ctx.emit(Attention(spec=spec), tensors)
    except IRError as e:
        raise ctx.error(f"{spec.variant} attention rejected its inputs: {e}") from e
