"""Gated positional self-attention (ConViT GPSA): a per-head blend of the content softmax and a positional map."""
from __future__ import annotations

from ..attention_ref import register_reference, repeat_kv
from ._common import as_f64, finish, softmax_attention


@register_reference("gated_positional")
def gated_positional(spec, named):
    f = as_f64(named)
    feat = spec.score_mods[0]
    q, k, v = f["query"], f["key"], f["value"]
    g = q.shape[1] // k.shape[1]
    vv = repeat_kv(v, g)
    eye = __import__("numpy").eye(vv.shape[2])          # softmax probabilities themselves: P·I
    content = softmax_attention(spec, q, k, eye[None, None].repeat(k.shape[1], 1).repeat(k.shape[0], 0))
    a = f["content_gate"][None, :, None, None] * content + f["pos_attention"]
    if feat.renormalize:
        a = a / a.sum(-1, keepdims=True)
    return finish(a @ vv, named)
