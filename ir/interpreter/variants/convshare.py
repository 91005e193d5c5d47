"""ConvShareViT: channel-shared valid 2-D convolutions on q/k/v token maps, then softmax attention."""
from __future__ import annotations

import numpy as np

from ..attention_ref import register_reference
from ._common import as_f64, finish, softmax_attention


def shared_conv_valid(x: np.ndarray, kernel: np.ndarray, image_size) -> np.ndarray:
    """(B, H, h·w, D) token maps, one (kh, kw) kernel for every channel, valid cross-correlation."""
    B, H, _, D = x.shape
    h, w = image_size
    kh, kw = kernel.shape
    img = x.reshape(B, H, h, w, D)
    oh, ow = h - kh + 1, w - kw + 1
    out = np.zeros((B, H, oh, ow, D))
    for a in range(kh):
        for c in range(kw):
            out += kernel[a, c] * img[:, :, a:a + oh, c:c + ow]
    return out.reshape(B, H, oh * ow, D)


@register_reference("conv_share")
def conv_share(spec, named):
    f = as_f64(named)
    size = spec.kv_source.image_size
    q, k, v = (shared_conv_valid(f[n], f[f"conv_{n[0]}"], size) for n in ("query", "key", "value"))
    return finish(softmax_attention(spec, q, k, v), named)
