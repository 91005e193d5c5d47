"""HiLo: Hi-Fi heads as plain attention inside each window (tokens reshaped into windows, windows become heads);
Lo-Fi heads as plain attention to window-average-pooled K/V (a mean Reduce); the two head groups concatenated."""
from __future__ import annotations

from . import register_decomposition
from ._build import Builder

WINDOW_MAJOR = (0, 1, 2, 4, 3, 5, 6)   # (B, H, h/wh, wh, w/ww, ww, D) <-> (B, H, h/wh, w/ww, wh, ww, D); own inverse


@register_decomposition("hilo")
def hilo(b: Builder) -> list:
    feat, spec = b.spec.kv_source, b.spec
    (h, w), (wh, ww) = feat.image_size, feat.window
    nh, nw = h // wh, w // ww
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    B, H = q.shape[0], spec.num_heads
    nl = feat.local_heads
    parts = []

    def grid(x, heads, label):
        return b.reshape(x, (B, heads, nh, wh, nw, ww, x.shape[3]), label)

    if nl:
        def windows(x, label):
            x = b.slice(x, 1, 0, nl, label=f"{label}_hi") if nl < H else x
            t = b.transpose(grid(x, nl, f"{label}_grid"), WINDOW_MAJOR, f"{label}_window_major")
            return b.reshape(t, (B, nl * nh * nw, wh * ww, x.shape[3]), f"{label}_windows")

        o = b.attention(b.plain_spec(num_heads=nl * nh * nw, num_kv_heads=nl * nh * nw),
                        windows(q, "q"), windows(k, "k"), windows(v, "v"), label="attention_hi")
        o = b.transpose(b.reshape(o, (B, nl, nh, nw, wh, ww, spec.v_head_dim), "out_hi_grid"), WINDOW_MAJOR,
                        "out_hi_token_major")
        parts.append(b.reshape(o, (B, nl, h * w, spec.v_head_dim), "out_hi"))
    if nl < H:
        ng = H - nl

        def lo(x, label):
            return b.slice(x, 1, nl, None, label=f"{label}_lo") if nl else x

        def pooled(x, label):
            m = b.reduce("mean", grid(lo(x, label), ng, f"{label}_lo_grid"), (3, 5), label=f"{label}_pooled")
            return b.reshape(m, (B, ng, nh * nw, x.shape[3]), f"{label}_pooled_tokens")

        parts.append(b.attention(b.plain_spec(num_heads=ng, num_kv_heads=ng), lo(q, "q"), pooled(k, "k"),
                                 pooled(v, "v"), label="attention_lo"))
    return [b.concat(parts, 1, "heads")]
