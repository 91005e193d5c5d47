"""Head mixing: MoH routing weights, knocking-heads cross-head projections, CHAI shared cluster scores."""
from __future__ import annotations

import numpy as np

from ..attention_ref import masked_softmax_attention, position_keep_mask, register_reference
from ._common import as_f64, finish, softmax_attention


def moh_weights(logits: np.ndarray, feat, balance: np.ndarray | None = None) -> np.ndarray:
    """(B, S, H) head weights of MoH (see the feature's docstring): top-k softmax for routed heads, 1 or the
    authors' shared router for shared heads, with the balancing router and scales when routers == 'moh'."""
    top_k, shared = feat.top_k, feat.shared_heads
    w = np.zeros_like(logits)
    routed = logits[..., shared:]
    idx = np.argsort(-routed, axis=-1, kind="stable")[..., :top_k]
    top = np.take_along_axis(routed, idx, axis=-1)
    e = np.exp(top - top.max(-1, keepdims=True))
    sub = np.zeros_like(routed)
    np.put_along_axis(sub, idx, e / e.sum(-1, keepdims=True), axis=-1)
    if feat.routers == "fixed":
        w[..., :shared] = 1.0
        w[..., shared:] = sub
        return w
    w[..., shared:] = top_k * sub
    if shared:
        def softmax(x):
            x = np.exp(x - x.max(-1, keepdims=True))
            return x / x.sum(-1, keepdims=True)
        b = 2.0 * softmax(balance)
        w[..., :shared] = shared * softmax(logits[..., :shared]) * b[..., :1]
        w[..., shared:] *= b[..., 1:]
    return w


@register_reference("moh")
def moh(spec, named):
    f = as_f64(named)
    out = softmax_attention(spec, f["query"], f["key"], f["value"])
    w = moh_weights(f["head_logits"], spec.head_mixing, f.get("balance_logits"))
    return finish(out * w.transpose(0, 2, 1)[..., None], named)


@register_reference("knocking_heads")
def knocking_heads(spec, named):
    f = as_f64(named)
    x = {n: f[full] for n, full in (("q", "query"), ("k", "key"), ("v", "value"))}
    for t in spec.head_mixing.targets:
        x[t] = np.einsum("hj,bjsd->bhsd", f[f"knock_{t}"], x[t])
    return finish(softmax_attention(spec, x["q"], x["k"], x["v"]), named)


@register_reference("chai")
def chai(spec, named):
    f = as_f64(named)
    q, k, v = f["query"], f["key"], f["value"]
    reps = list(spec.head_mixing.representatives)
    scores = spec.scale * (q[:, reps] @ k[:, reps].swapaxes(-1, -2))   # head h uses its representative's scores
    if spec.softcap:
        scores = spec.softcap * np.tanh(scores / spec.softcap)
    keep = position_keep_mask(spec.mask, q.shape[2], k.shape[2])
    return finish(masked_softmax_attention(scores, v, keep), named)
