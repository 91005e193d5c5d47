"""Attention-family ops the IR cannot express yet: registered so the error is specific, not 'unknown op'.

LinearAttention (ai.onnx 27) is a recurrent state-space kernel (state update S = decay*S + k vᵀ,
optional delta rule), not softmax attention: AttentionSpec has no slot for it.
FlexAttention (ai.onnx.preview) carries score_mod / prob_mod / mask_mod as ONNX subgraphs, which the
IR cannot hold as data; its _expanded form (primitives) is what attncc imports instead.
"""
from __future__ import annotations

from .context import ImportContext
from .registry import converter


@converter("", "LinearAttention", since=27)
def convert_linear_attention(ctx: ImportContext, node):
    ctx.fail("LinearAttention (recurrent linear/gated/delta-rule attention) has no IR equivalent: the IR's "
             "Attention op is softmax attention. Supported attention ops: ai.onnx::Attention (23-25), "
             "com.microsoft::Attention/MultiHeadAttention/GroupQueryAttention; export the linear-attention "
             "recurrence in primitive ops (the `_expanded` form) to import it op by op")


@converter("ai.onnx.preview", "FlexAttention")
def convert_flex_attention(ctx: ImportContext, node):
    ctx.fail("FlexAttention's score_mod/prob_mod/mask_mod are ONNX subgraphs, which AttentionSpec cannot hold. "
             "Supported attention ops: ai.onnx::Attention (23-25), com.microsoft::Attention/MultiHeadAttention/"
             "GroupQueryAttention; import the `_expanded` (primitive-op) form instead")
