"""ConvShareViT: each channel-shared valid 2-D convolution as kh·kw shifted slices of the token map scaled by one
kernel entry and summed (elementwise ops the CPU backend fuses), then plain attention over the output tokens."""
from __future__ import annotations

from . import register_decomposition
from ._build import Builder


def shared_conv_valid(b: Builder, x, kernel, image_size, kernel_size, label: str):
    """(B, H, h·w, D) -> (B, H, (h-kh+1)(w-kw+1), D): Σ_{a,c} kernel[a, c] · img[a:a+oh, c:c+ow]."""
    B, H, _, D = x.shape
    (h, w), (kh, kw) = image_size, kernel_size
    oh, ow = h - kh + 1, w - kw + 1
    img = b.reshape(x, (B, H, h, w, D), f"{label}_img")
    acc = None
    for a in range(kh):
        rows = b.slice(img, 2, a, a + oh, label=f"{label}_rows{a}")
        k_row = b.slice(kernel, 0, a, a + 1, label=f"{label}_k{a}")
        for c in range(kw):
            tap = b.slice(rows, 3, c, c + ow, label=f"{label}_tap{a}_{c}")
            weight = b.reshape(b.slice(k_row, 1, c, c + 1, label=f"{label}_k{a}_{c}"), (1, 1, 1, 1, 1), f"{label}_w{a}_{c}")
            term = b.binary("mul", tap, weight, f"{label}_term{a}_{c}")
            acc = term if acc is None else b.binary("add", acc, term, f"{label}_sum{a}_{c}")
    return b.reshape(acc, (B, H, oh * ow, D), f"{label}_tokens")


@register_decomposition("conv_share")
def conv_share(b: Builder) -> list:
    feat = b.spec.kv_source
    qkv = [shared_conv_valid(b, b.named[n], b.named[f"conv_{n[0]}"], feat.image_size, feat.kernel_size, n[0])
           for n in ("query", "key", "value")]
    return [b.attention(b.plain_spec(), *qkv)]
