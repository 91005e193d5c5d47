"""HiLo: windowed Hi-Fi heads and pooled-KV Lo-Fi heads."""
from __future__ import annotations

import numpy as np

from ..attention_ref import register_reference
from ._common import as_f64, finish, softmax_attention


def window_ids(image_size, window) -> np.ndarray:
    """Window index of each row-major token."""
    h, w = image_size
    r, c = np.divmod(np.arange(h * w), w)
    return (r // window[0]) * (w // window[1]) + c // window[1]


def avg_pool(x: np.ndarray, image_size, window) -> np.ndarray:
    """(B, H, h·w, D) -> (B, H, (h/wh)·(w/ww), D) mean over each window."""
    B, H, _, D = x.shape
    (h, w), (wh, ww) = image_size, window
    x = x.reshape(B, H, h // wh, wh, w // ww, ww, D).mean(axis=(3, 5))
    return x.reshape(B, H, -1, D)


@register_reference("hilo")
def hilo(spec, named):
    f = as_f64(named)
    feat = spec.kv_source
    q, k, v = f["query"], f["key"], f["value"]
    nl = feat.local_heads
    parts = []
    if nl:
        ids = window_ids(feat.image_size, feat.window)
        keep = ids[:, None] == ids[None, :]
        parts.append(softmax_attention(spec, q[:, :nl], k[:, :nl], v[:, :nl], keep=keep))
    if nl < spec.num_heads:
        kp = avg_pool(k[:, nl:], feat.image_size, feat.window)
        vp = avg_pool(v[:, nl:], feat.image_size, feat.window)
        parts.append(softmax_attention(spec, q[:, nl:], kp, vp))
    return finish(np.concatenate(parts, axis=1), named)
