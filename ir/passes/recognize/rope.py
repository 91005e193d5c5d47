"""RoPE applied identically to q and k (4-D, bhsd or bshd) -> spec.rope with half-size cos/sin inputs.

  rotate-half: y = x*cos + cat(-x[..., h:], x[..., :h]) * sin           (Llama, GPT-NeoX)
  interleaved: y = x*cos + flatten(stack(-x[..., 1::2], x[..., 0::2])) * sin   (GPT-J)
  partial:     y = cat(rope(x[..., :rd]), x[..., rd:])
Tables broadcast to (B|1, 1, S, rd) (bhsd; (B|1, S, 1, rd) for bshd) and must hold each frequency twice (halves equal for
rotate-half, pairs equal for interleaved): checked on constants, or structurally for tables
computed in the graph (cat(f, f) for rotate-half, f repeated per pair for interleaved; through
slices along the sequence, casts, cos/sin, views). The Attention op wants (B|1, S, rd/2).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import dims as D
from ...graph import Value
from ...ops import RopeSpec, Slice
from .common import Emitter, MatchContext, is_binary, is_unary, producer_kind


@dataclass
class RopeMatch:
    x: Value  # the tensor before RoPE
    cos: Value
    sin: Value
    style: str
    rotary_dim: int


def _slice_of(v: Value, start, stop, step=1) -> Value | None:
    """x when v = x[..., start:stop:step] on the last axis."""
    if producer_kind(v) != "Slice":
        return None
    op, x = v.producer.op, v.producer.inputs[0]
    if op.axis % v.rank != v.rank - 1 or op.step != step or op.start != start:
        return None
    if op.stop != stop and not (stop is None and D.equal(op.stop, x.shape[-1])) \
            and not (op.stop is None and stop is not None and D.equal(stop, x.shape[-1])):
        return None
    return x


def _rotated(v: Value) -> tuple[Value, str] | None:
    """(x, style) when v is rotate_half(x) or the interleaved rotation of x."""
    if producer_kind(v) == "Concat" and v.producer.op.axis % v.rank == v.rank - 1 and len(v.producer.inputs) == 2:
        a, b = v.producer.inputs
        d = a.shape[-1]
        if is_unary(a, "neg") and isinstance(d, int):
            x = _slice_of(a.producer.inputs[0], d, None)
            if x is not None and _slice_of(b, 0, d) is x and x.shape[-1] == 2 * d:
                return x, "rotate_half"
    if producer_kind(v) == "Reshape":
        c = v.producer.inputs[0]
        if producer_kind(c) == "Concat" and c.shape[-1] == 2 and c.producer.op.axis % c.rank == c.rank - 1:
            a, b = c.producer.inputs
            if producer_kind(a) == "Reshape" and producer_kind(b) == "Reshape":
                na, xb = a.producer.inputs[0], b.producer.inputs[0]
                if is_unary(na, "neg"):
                    x = _slice_of(na.producer.inputs[0], 1, None, 2)
                    if x is not None and _slice_of(xb, 0, None, 2) is x and tuple(v.shape) == tuple(x.shape):
                        return x, "interleaved"
    return None


def _products(v: Value) -> list[tuple[Value, Value]] | None:
    if not is_binary(v, "mul"):
        return None
    a, b = v.producer.inputs
    return [(a, b), (b, a)]


def _match_full(y: Value) -> RopeMatch | None:
    if not is_binary(y, "add"):
        return None
    t1, t2 = y.producer.inputs
    for plain, rot in ((t1, t2), (t2, t1)):
        p1, p2 = _products(plain), _products(rot)
        if p1 is None or p2 is None:
            continue
        for r, sin in p2:
            got = _rotated(r)
            if got is None:
                continue
            x, style = got
            for xx, cos in p1:
                if xx is x and tuple(y.shape) == tuple(x.shape):
                    return RopeMatch(x, cos, sin, style, x.shape[-1])
    return None


def match_rope(y: Value) -> RopeMatch | None:
    """The RoPE application producing the 4-D `y`, full or partial; None when `y` is something else."""
    m = _match_full(y)
    if m is not None:
        return m
    if producer_kind(y) == "Concat" and len(y.producer.inputs) == 2 and y.producer.op.axis % y.rank == y.rank - 1:
        rot, rest = y.producer.inputs
        inner = _match_full(rot)
        rd = rot.shape[-1]
        if inner is not None and isinstance(rd, int):
            x = _slice_of(inner.x, 0, rd)
            if x is not None and _slice_of(rest, rd, None) is x:
                return RopeMatch(x, inner.cos, inner.sin, inner.style, rd)
    return None


def _duplicated(ctx: MatchContext, t: Value, style: str, depth: int = 0) -> bool:
    """Whether the table holds each frequency twice in the layout `style` reads."""
    a = ctx.const(t)
    if a is not None:
        a = np.asarray(a, np.float64)
        h = a.shape[-1] // 2
        return np.array_equal(a[..., :h], a[..., h:]) if style == "rotate_half" else np.array_equal(a[..., 0::2], a[..., 1::2])
    if depth > 12 or t.producer is None:
        return False
    n, kind = t.producer, producer_kind(t)
    if style == "rotate_half" and kind == "Concat" and n.op.axis % t.rank == t.rank - 1 and len(n.inputs) == 2 \
            and n.inputs[0] is n.inputs[1]:
        return True  # cat(freqs, freqs)
    if style == "interleaved" and kind == "Reshape" and _pairs_repeated(n.inputs[0]):
        return True  # stack(freqs, freqs, -1).flatten(-2) or freqs[..., None].expand(..., 2).flatten(-2)
    if kind in ("Cast", "Unary"):
        return _duplicated(ctx, n.inputs[0], style, depth + 1)
    if kind in ("Reshape", "Expand") and D.equal(n.inputs[0].shape[-1], t.shape[-1]):
        return _duplicated(ctx, n.inputs[0], style, depth + 1)
    if kind in ("Slice", "Gather") and n.op.axis % n.inputs[0].rank != n.inputs[0].rank - 1:
        return _duplicated(ctx, n.inputs[0], style, depth + 1)
    if kind == "Binary" and n.op.fn == "mul" and ctx.scalar(n.inputs[1]) is not None:
        return _duplicated(ctx, n.inputs[0], style, depth + 1)
    return False


def _pairs_repeated(p: Value) -> bool:
    """Whether `p` (..., F, 2) holds one value per pair: Concat of one (..., F, 1) tensor with itself, or its Expand."""
    if p.rank < 2 or p.shape[-1] != 2:
        return False
    n, kind = p.producer, producer_kind(p)
    if kind == "Concat" and n.op.axis % p.rank == p.rank - 1 and len(n.inputs) == 2 and n.inputs[0] is n.inputs[1]:
        return True
    return kind == "Expand" and n.inputs[0].shape[-1] == 1


def half_table(ctx: MatchContext, em: Emitter, t: Value, m: RopeMatch, seq, seq_axis: int = 2) -> Value | None:
    """The (B|1, S, rd/2) table the Attention op reads, or None when `t` is not a valid RoPE table.
    `seq_axis` is the sequence axis of the rotated 4-D tensor: 2 for bhsd, 1 for RoPE applied to bshd.
    A constant table becomes a constant half table; a constant sliced to a symbolic sequence length
    becomes the half constant sliced the same way; anything else is sliced by IR ops."""
    if t.rank > 4 or not D.equal(t.shape[-1], m.rotary_dim) or not _duplicated(ctx, t, m.style):
        return None
    full = (1,) * (4 - t.rank) + tuple(t.shape)
    if full[3 - seq_axis] != 1 or not D.equal(full[seq_axis], seq):
        return None
    h = m.rotary_dim // 2
    pick = slice(0, h) if m.style == "rotate_half" else slice(0, None, 2)
    out_shape = (full[0], seq, h)
    data = ctx.const(t)
    if data is not None:
        return em.graph.add_constant(np.ascontiguousarray(np.asarray(data)[..., pick].reshape(out_shape)),
                                     name=f"{em.hint}_table")
    sl = t.producer if producer_kind(t) == "Slice" else None
    base = ctx.const(sl.inputs[0]) if sl is not None and sl.op.axis % t.rank != t.rank - 1 else None
    if base is not None:  # slice the half of the buffer to the sequence instead of the whole buffer
        half = em.graph.add_constant(np.ascontiguousarray(np.asarray(base)[..., pick]), name=f"{em.hint}_table")
        return em.reshape(em.graph.add1(Slice(sl.op.axis, sl.op.start, sl.op.stop, sl.op.step), [half],
                                        name=f"{em.hint}_slice", source=em.source), out_shape)
    t3 = em.reshape(t, (full[0], seq, m.rotary_dim))
    return em.slice(t3, -1, 0, h) if m.style == "rotate_half" else em.slice(t3, -1, 0, None, 2)


def fold_rope(ctx: MatchContext, em: Emitter, q: Value, k: Value,
              seq_axis: int = 2) -> tuple[Value, Value, Value, Value, RopeSpec] | None:
    """(q, k before RoPE, cos, sin, RopeSpec) when q and k get the same RoPE; None otherwise.
    q and k are bhsd (seq_axis 2) or bshd (seq_axis 1, GPT-J rotates before moving heads forward)."""
    mq, mk = match_rope(q), match_rope(k)
    if mq is None or mk is None or (mq.style, mq.rotary_dim) != (mk.style, mk.rotary_dim):
        return None
    for a, b in ((mq.cos, mk.cos), (mq.sin, mk.sin)):
        if a is not b:
            ca, cb = ctx.const(a), ctx.const(b)
            if ca is None or cb is None or not np.array_equal(ca, cb):
                return None
    seq = q.shape[seq_axis]
    if not D.equal(k.shape[seq_axis], seq):
        return None
    cos = half_table(ctx, em, mq.cos, mq, seq, seq_axis)
    sin = half_table(ctx, em, mq.sin, mq, seq, seq_axis)
    if cos is None or sin is None:
        return None
    return mq.x, mk.x, cos, sin, RopeSpec(mq.style, mq.rotary_dim)
