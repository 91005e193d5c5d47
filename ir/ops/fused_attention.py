"""FusedAttention: an Attention op with its output projection (+ bias, + residual add) as an epilogue.

Produced by `fuse-attention{epilogue=...}` for targets whose attention kernel writes the
projected row directly (saving the round trip of the (B, S, H*Dv) attention output through
memory and one kernel launch). Backends read the same `spec`/`tiling` as for Attention plus
the epilogue flags; the inputs are the Attention inputs followed by the epilogue operands.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import dims as D
from ..errors import require
from .attention import Attention, Tiling
from .attention_spec import AttentionSpec
from .base import Op, register_op

EPILOGUE_INPUTS = ("out_weight", "out_bias", "residual")


@register_op
@dataclass(frozen=True)
class FusedAttention(Op):
    """y = merge_heads(Attention(spec)) @ out_weight (+ out_bias) (+ residual); y is (B, S, N).

    merge_heads takes the (B, H, S, Dv) result (whatever spec.layout stores) to (B, S, H*Dv);
    out_weight is (H*Dv, N) like Linear's; residual has y's shape. Outputs: y, then the
    present key/value when spec.kv_cache (as in Attention).
    """

    spec: AttentionSpec = field(default=None)
    tiling: Tiling | None = None
    has_out_bias: bool = False
    has_residual: bool = False
    op_name: ClassVar[str] = "FusedAttention"
    num_inputs: ClassVar = (4, None)

    def attention(self) -> Attention:
        """The plain Attention op this fused op extends."""
        return Attention(spec=self.spec, tiling=self.tiling)

    def epilogue_names(self) -> tuple[str, ...]:
        return ("out_weight",) + (("out_bias",) if self.has_out_bias else ()) + (("residual",) if self.has_residual else ())

    def input_names(self) -> tuple[str, ...]:
        return self.spec.input_names() + self.epilogue_names()

    def named_inputs(self, node) -> dict[str, Any]:
        return dict(zip(self.input_names(), node.inputs))

    def attrs(self) -> dict[str, Any]:
        out = self.attention().attrs()
        out.update(has_out_bias=self.has_out_bias, has_residual=self.has_residual)
        return out

    @classmethod
    def from_attrs(cls, attrs):
        base = Attention.from_attrs(attrs)
        return cls(spec=base.spec, tiling=base.tiling, has_out_bias=bool(attrs.get("has_out_bias")),
                   has_residual=bool(attrs.get("has_residual")))

    def infer(self, node):
        n_attn = len(self.spec.input_names())
        require(len(node.inputs) == n_attn + len(self.epilogue_names()), node,
                f"expects inputs {list(self.input_names())}, got {len(node.inputs)}")

        class _View:  # the attention part of this node, for Attention's shape rules
            name, source, inputs = node.name, node.source, node.inputs[:n_attn]

        attn = self.attention().infer(_View)
        out = attn[0]
        B, S = out.shape[0], out.shape[2 if self.spec.layout == "bhsd" else 1]
        named = self.named_inputs(node)
        w = named["out_weight"].type
        width = self.spec.num_heads * self.spec.v_head_dim
        require(w.rank == 2 and D.equal(w.shape[0], width), node,
                f"out_weight must be (num_heads*v_head_dim, N) = ({width}, N), got {w}")
        require(w.dtype == out.dtype, node, f"out_weight dtype {w.dtype} differs from attention dtype {out.dtype}")
        y = out.with_shape((B, S, w.shape[1]))
        if self.has_out_bias:
            b = named["out_bias"].type
            require(b.rank == 1 and D.equal(b.shape[0], w.shape[1]), node, f"out_bias {b} does not match out_weight {w}")
        if self.has_residual:
            r = named["residual"].type
            require(r == y, node, f"residual must be {y}, got {r}")
        return [y] + attn[1:]
