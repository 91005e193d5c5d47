"""Hand-built IR of attention ops fed by spelled-out RoPE, the way torch.export writes SDPA models
(`q * cos + rotate_half(q) * sin` on bhsd q/k, tables sliced from buffers or computed from inv_freq)."""
from __future__ import annotations

import numpy as np

from attncc.ir import Attention, AttentionSpec, Binary, Concat, Graph, MaskSpec, Reshape, Slice, Unary


def rope_tables(seq: int, rotary_dim: int, style: str = "rotate_half") -> tuple[np.ndarray, np.ndarray]:
    """cos/sin (seq, rotary_dim) holding each frequency twice: halves (rotate-half) or pairs (interleaved)."""
    inv = 1.0 / (10000 ** (np.arange(0, rotary_dim, 2) / rotary_dim))
    f = np.outer(np.arange(seq), inv)
    f = np.concatenate([f, f], -1) if style == "rotate_half" else np.repeat(f, 2, -1)
    return np.cos(f).astype(np.float32), np.sin(f).astype(np.float32)


def _rotated(g: Graph, x, style: str):
    d = x.shape[-1]
    lead = tuple(x.shape[:-1])
    if style == "rotate_half":
        x1 = g.add1(Slice(-1, 0, d // 2), [x])
        x2 = g.add1(Slice(-1, d // 2, None), [x])
        return g.add1(Concat(-1), [g.add1(Unary("neg"), [x2]), x1], name="rotate_half")
    x0 = g.add1(Reshape(lead + (d // 2, 1)), [g.add1(Slice(-1, 0, None, 2), [x])])
    x1 = g.add1(Reshape(lead + (d // 2, 1)), [g.add1(Unary("neg"), [g.add1(Slice(-1, 1, None, 2), [x])])])
    return g.add1(Reshape(tuple(x.shape)), [g.add1(Concat(-1), [x1, x0])], name="rotate_pairs")


def apply_rope(g: Graph, x, cos, sin, style: str = "rotate_half", rotary_dim: int | None = None):
    """x * cos + rotate(x) * sin on the first `rotary_dim` channels of x; the rest passes through."""
    rd = rotary_dim or x.shape[-1]
    rot = x if rd == x.shape[-1] else g.add1(Slice(-1, 0, rd), [x])
    y = g.add1(Binary("add"), [g.add1(Binary("mul"), [rot, cos]), g.add1(Binary("mul"), [_rotated(g, rot, style), sin])],
               name=f"{x.name}_rope")
    if rd != x.shape[-1]:
        y = g.add1(Concat(-1), [y, g.add1(Slice(-1, rd, None), [x])], name=f"{x.name}_partial_rope")
    return y


def sdpa_with_rope(style: str = "rotate_half", rotary_dim: int = 8, seq="S", max_seq: int = 16,
                   head_dim: int = 8) -> Graph:
    """GQA causal attention on RoPE'd q/k; tables are (max_seq, rotary_dim) constants sliced to the sequence."""
    g = Graph("sdpa_rope")
    q = g.add_input("q", "float32", (1, 4, seq, head_dim))
    k, v = (g.add_input(n, "float32", (1, 2, seq, head_dim)) for n in "kv")
    c, s = rope_tables(max_seq, rotary_dim, style)
    cos = g.add1(Slice(0, 0, seq), [g.add_constant(c, "cos_cached")], name="cos")
    sin = g.add1(Slice(0, 0, seq), [g.add_constant(s, "sin_cached")], name="sin")
    qr, kr = (apply_rope(g, x, cos, sin, style, rotary_dim) for x in (q, k))
    spec = AttentionSpec(num_heads=4, num_kv_heads=2, head_dim=head_dim, mask=MaskSpec(causal=True))
    g.set_outputs([g.add1(Attention(spec=spec), [qr, kr, v], name="attn")])
    return g


def sdpa_with_kv_cache() -> Graph:
    """SDPA on Concat(past, new) K/V whose concatenations are also returned (the model's new cache)."""
    g = Graph("sdpa_cache")
    q = g.add_input("q", "float32", (1, 4, "S", 8))
    k, v = (g.add_input(n, "float32", (1, 2, "S", 8)) for n in "kv")
    pk, pv = (g.add_input(n, "float32", (1, 2, "P", 8)) for n in ("past_k", "past_v"))
    ck = g.add1(Concat(2), [pk, k], name="cat_k")
    cv = g.add1(Concat(2), [pv, v], name="cat_v")
    spec = AttentionSpec(num_heads=4, num_kv_heads=2, head_dim=8, mask=MaskSpec(causal=True, alignment="bottom_right"))
    g.set_outputs([g.add1(Attention(spec=spec), [q, ck, cv], name="attn"), ck, cv])
    return g
