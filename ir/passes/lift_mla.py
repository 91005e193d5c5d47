"""lift-mla: recognize DeepSeek-style multi-head latent attention spelled out around a lifted Attention.

HF's DeepseekV3Attention (and V2's) builds per-head K/V from one shared latent:
    c    = kv_a_layernorm(kv_a_proj_with_mqa(x)[..., :latent])        (B, 1, S, latent)
    kv   = (c @ W_kvb).view(B, S, H, nope + Dv).transpose(1, 2)        W_kvb: (latent, H * (nope + Dv))
    key  = cat(kv[..., :nope], rotated k_pe.expand(B, H, S, rope))     k_pe: (B, 1, S, rope), shared by all heads
    value = kv[..., nope:]
(the exported key is often `torch.empty` + slice_scatter, i.e. Concat/Slice chains on the channel axis; they
are looked through). Such an op is rewritten into the IR's MLA feature in its naive form
(ir/ops/attention_features/latent.py): key = [c | k_pe] (B, 1, S, latent + rope), value = c,
w_uk / w_uv = W_kvb split per head, num_kv_heads = 1. Same scores and outputs; the cost model then counts
the KV cache per token as latent + rope, and mla-absorb may pick the absorbed order.
Sites whose K and V come from one shared projection but miss a piece of the pattern stay MHA and say why in
graph.diagnostics (kind "mla-not-lifted").
Requires: lift-attention (bhsd layout, RoPE still spelled out). Guarantees: same outputs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import dims as D
from ..graph import Graph, Node, Value
from ..ops import Concat, Reshape
from ..ops.attention_features.latent import MLA
from ._rewrite import SWAP_SEQ_HEADS, constant_array, producer_op, replace_node
from .base import Pass, register_pass

Segment = tuple[Value, int, int]   # channels [lo, hi) of a value's last axis


def _last_axis(op, rank: int) -> bool:
    return op.axis in (rank - 1, -1)


def channel_segments(v: Value, lo: int, hi: int, depth: int = 0) -> list[Segment]:
    """Where channels [lo, hi) of `v` (last axis) come from, looking through channel Concat and unit-step Slice."""
    p = v.producer
    n = v.shape[-1] if v.rank else None
    if p is None or depth > 32 or not isinstance(n, int):
        return [(v, lo, hi)]
    op = p.op
    if op.op_name == "Slice" and _last_axis(op, v.rank) and op.step == 1 and isinstance(op.start, int):
        src_n = p.inputs[0].shape[-1]
        if isinstance(src_n, int):
            start = op.start + src_n if op.start < 0 else op.start
            return channel_segments(p.inputs[0], lo + start, hi + start, depth + 1)
    if op.op_name == "Concat" and _last_axis(op, v.rank):
        out, off = [], 0
        for x in p.inputs:
            w = x.shape[-1]
            if not isinstance(w, int):
                return [(v, lo, hi)]
            a, b = max(lo, off), min(hi, off + w)
            if a < b:
                out += channel_segments(x, a - off, b - off, depth + 1)
            off += w
        return _merged(out)
    return [(v, lo, hi)]


def _merged(segs: list[Segment]) -> list[Segment]:
    """Adjacent segments of one value joined (a slice re-concatenated in order is the original range)."""
    out: list[Segment] = []
    for s in segs:
        if out and out[-1][0] is s[0] and out[-1][2] == s[1]:
            out[-1] = (s[0], out[-1][1], s[2])
        else:
            out.append(s)
    return out


def _same(a, b) -> bool:
    return len(a) == len(b) and all(D.equal(x, y) for x, y in zip(a, b))


@dataclass
class _Match:
    latent: Value          # c, the normalized latent, as (B, 1, S, latent)
    k_pe: Value            # rotated shared RoPE key (B, 1, S, rope)
    w_kvb: np.ndarray      # (latent, H * (nope + Dv))
    nope: int
    rope: int


def _match(graph: Graph, node: Node) -> _Match | str | None:
    """The MLA pieces feeding `node`; a reason string when K/V share a projection but the pattern breaks; None
    when the site has nothing of MLA (plain attention, no diagnostic)."""
    spec = node.spec
    named = node.op.named_inputs(node)
    k, v = named["key"], named["value"]
    H, Dk, Dv = spec.num_heads, spec.head_dim, spec.v_head_dim
    vsegs = channel_segments(v, 0, Dv)
    if len(vsegs) != 1:
        return None
    proj, v_lo, v_hi = vsegs[0]
    ksegs = channel_segments(k, 0, Dk)
    if ksegs[0][0] is not proj:
        return None   # K and V do not share one projection: not MLA
    nope = ksegs[0][2] - ksegs[0][1]
    if ksegs[0][1] != 0 or v_lo != nope or v_hi != proj.shape[-1]:
        return (f"key/value channels of the shared projection are not [k_nope | v] "
                f"(key {ksegs[0][1:]}, value {(v_lo, v_hi)})")
    if len(ksegs) != 2:
        return "key is not [k_nope | k_pe]: no decoupled RoPE key after the per-head part" if len(ksegs) == 1 \
            else f"key's RoPE part is assembled from {len(ksegs) - 1} pieces, not one broadcast k_pe"
    pe, pe_lo, pe_hi = ksegs[1]
    rope = pe_hi - pe_lo
    exp = producer_op(pe, "Expand")
    B, S = k.shape[0], k.shape[2]
    if exp is None or pe_lo != 0 or pe.shape[-1] != rope or not _same(exp.inputs[0].shape, (B, 1, S, rope)):
        return "key's RoPE part is not one (B, 1, S, rope) k_pe broadcast over the heads (Expand)"
    if spec.mask.input != "none" or spec.mask.kv_lengths:
        return "the op reads a mask tensor, which the MLA feature does not take (only causal / window masks)"
    t = producer_op(proj, "Transpose")
    if t is None or tuple(t.op.perm) != SWAP_SEQ_HEADS:
        return "the shared projection is not transposed (B, S, H, D) -> (B, H, S, D)"
    r = producer_op(t.inputs[0], "Reshape")
    lin = producer_op(r.inputs[0], "Linear") if r is not None else None
    if lin is None or lin.op.has_bias:
        return "the shared projection is not a bias-free Linear reshaped to (B, S, H, nope + v)" + \
            (" (kv_b_proj has a bias)" if lin is not None else "")
    w = constant_array(graph, lin.inputs[1])
    if w is None:
        return "kv_b_proj's weight is not a constant (W_uk / W_uv must be known to lift the latent form)"
    P = nope + Dv
    if not _same(r.outputs[0].shape, (B, S, H, P)) or w.shape[1] != H * P:
        return f"kv_b_proj output {tuple(r.outputs[0].shape)} is not (B, S, H, nope + v) = ({B}, {S}, {H}, {P})"
    return _Match(lin.inputs[0], exp.inputs[0], w, nope, rope)


def lift_node(graph: Graph, node: Node) -> bool:
    """Rewrite one lifted Attention into the naive MLA form (True), or record why it stays MHA (False)."""
    spec = node.spec
    if spec.layout != "bhsd" or spec.kv_cache or spec.rope is not None or spec.features_list() \
            or spec.num_kv_heads != spec.num_heads:
        return False
    m = _match(graph, node)
    if m is None:
        return False
    if isinstance(m, str):
        graph.diagnostics.append({"kind": "mla-not-lifted", "pass": LiftMLA.name, "node": node.name, "reason": m})
        return False
    H, Dv, L = spec.num_heads, spec.v_head_dim, m.w_kvb.shape[0]
    k = node.op.named_inputs(node)["key"]
    B, S = k.shape[0], k.shape[2]
    c = m.latent
    if not _same(c.shape, (B, 1, S, L)):   # Linear rows are (b, s) in row-major order, as the Reshape read them
        c = graph.add1(Reshape((B, 1, S, L)), [c], name=f"{node.name}_latent", source=node.source)
    key = graph.add1(Concat(axis=3), [c, m.k_pe], name=f"{node.name}_latent_key", source=node.source)
    wb = m.w_kvb.reshape(L, H, m.nope + Dv)
    w_uk = graph.add_constant(np.ascontiguousarray(wb[:, :, :m.nope]), f"{node.name}_w_uk")
    w_uv = graph.add_constant(np.ascontiguousarray(wb[:, :, m.nope:]), f"{node.name}_w_uv")
    new_spec = spec.replace(num_kv_heads=1, kv_source=MLA(latent_dim=L, rope_dim=m.rope))
    named = {**node.op.named_inputs(node), "key": key, "value": c, "w_uk": w_uk, "w_uv": w_uv}
    replace_node(graph, node, dataclasses.replace(node.op, spec=new_spec), [named[n] for n in new_spec.input_names()])
    return True


@register_pass
@dataclass(frozen=True)
class LiftMLA(Pass):
    """Turn Attention ops whose K/V are DeepSeek's latent up-projection + shared RoPE key into the MLA feature."""

    name: ClassVar[str] = "lift-mla"

    def run(self, graph: Graph) -> Graph:
        lifted = [lift_node(graph, node) for node in list(graph.find("Attention"))]
        if any(lifted):   # the expanded K/V are dead now; a graph without MLA is left exactly as it came
            graph.dead_code_elimination()
        return graph
