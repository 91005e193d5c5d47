"""Head mixing around plain attention: MoH gates (top-k by pairwise rank counting, softmax over the kept logits),
knocking-heads cross-head matmuls, CHAI clusters (one attention per cluster, members' V stacked on features)."""
from __future__ import annotations

import numpy as np

from . import register_decomposition
from ._build import Builder


def moh_weights(b: Builder, logits):
    """(B, S, H) weights: 1 for shared heads; softmax over the top-k routed logits (ties: lower index first); else 0."""
    feat = b.spec.head_mixing
    Bn, S, H = logits.shape
    shared, R = feat.shared_heads, H - feat.shared_heads
    routed = b.slice(logits, 2, shared, None, label="routed_logits") if shared else logits
    mine = b.reshape(routed, (Bn, S, R, 1), "logit_j")            # the head being ranked
    other = b.reshape(routed, (Bn, S, 1, R), "logit_i")           # every head it is compared with
    earlier = b.const(np.arange(R)[None, :] < np.arange(R)[:, None], "earlier_head", dtype="bool")  # [j, i] = i < j
    beats = b.binary("or", b.binary("gt", other, mine, "beats_gt"),
                     b.binary("and", b.binary("eq", other, mine, "tie"), earlier, "tie_earlier"), "beats")
    rank = b.reduce("sum", b.cast(beats, b.dtype, "beats_f"), (-1,), label="rank")     # heads ranked above j
    keep = b.binary("lt", rank, b.scalar(float(feat.top_k), "top_k"), "in_top_k")
    w = b.softmax(b.where(keep, routed, b.scalar(-np.inf, "neg_inf"), "top_k_logits"), -1, "routed_weights")
    if feat.routers == "moh":   # the authors' scales, shared router and shared-vs-routed balancing router
        w = b.scale(w, float(feat.top_k), "routed_scaled")
        if shared:
            bal = b.scale(b.softmax(b.named["balance_logits"], -1, "balance"), 2.0, "balance_x2")
            sw = b.scale(b.softmax(b.slice(logits, 2, 0, shared, label="shared_logits"), -1, "shared_softmax"),
                         float(shared), "shared_scaled")
            sw = b.binary("mul", sw, b.slice(bal, 2, 0, 1, label="balance_shared"), "shared_weights")
            w = b.binary("mul", w, b.slice(bal, 2, 1, 2, label="balance_routed"), "routed_weights_balanced")
            w = b.concat([sw, w], 2, "head_weights")
    elif shared:
        ones = b.expand(b.const(np.ones((1, 1, shared)), "shared_one"), (Bn, S, shared), "shared_weights")
        w = b.concat([ones, w], 2, "head_weights")
    return w


@register_decomposition("moh")
def moh(b: Builder) -> list:
    """Plain attention, then each head's output scaled by its per-token gate."""
    o = b.attention(b.plain_spec(), b.named["query"], b.named["key"], b.named["value"])
    w = moh_weights(b, b.named["head_logits"])
    Bn, S, H = w.shape
    gate = b.reshape(b.transpose(w, (0, 2, 1), "gate_bhs"), (Bn, H, S, 1), "gate")
    return [b.binary("mul", o, gate, "gated")]


@register_decomposition("knocking_heads")
def knocking_heads(b: Builder) -> list:
    """x'_h = Σ_j M[h, j] x_j as M (H, H) @ x viewed (B, H, S·D), for each mixed target, then plain attention."""
    x = {"q": b.named["query"], "k": b.named["key"], "v": b.named["value"]}
    for t in b.spec.head_mixing.targets:
        B, H, S, D = x[t].shape
        flat = b.reshape(x[t], (B, H, -1), f"{t}_flat")
        x[t] = b.reshape(b.matmul(b.named[f"knock_{t}"], flat, f"{t}_knocked"), (B, H, S, D), f"{t}_mixed")
    return [b.attention(b.plain_spec(), x["q"], x["k"], x["v"])]


@register_decomposition("chai")
def chai(b: Builder) -> list:
    """Clusters of equal size n are batched as heads of one attention: q/k of their representatives and the
    members' V concatenated on features (Dv·n), so each cluster's scores are computed once; outputs are split
    back and gathered into head order."""
    feat, spec = b.spec.head_mixing, b.spec
    q, k, v = (b.named[n] for n in ("query", "key", "value"))
    B, H, Sq, _ = q.shape
    Skv, Dv = k.shape[2], spec.v_head_dim
    members: dict[int, list[int]] = {}
    for h, c in enumerate(feat.clusters):
        members.setdefault(c, []).append(h)
    by_size: dict[int, list[list[int]]] = {}
    for heads in members.values():
        by_size.setdefault(len(heads), []).append(heads)
    parts, order = [], []
    for n, clusters in sorted(by_size.items()):
        C, tag = len(clusters), f"size{n}"
        reps = [c[0] for c in clusters]
        flat = [h for c in clusters for h in c]
        order += flat
        q_rep, k_rep = b.gather(q, reps, 1, f"q_reps_{tag}"), b.gather(k, reps, 1, f"k_reps_{tag}")
        vm = b.gather(v, flat, 1, f"v_members_{tag}")
        if n > 1:   # (B, C·n, S, Dv) -> (B, C, S, n·Dv)
            vm = b.reshape(b.transpose(b.reshape(vm, (B, C, n, Skv, Dv), f"v_split_{tag}"), (0, 1, 3, 2, 4),
                                       f"v_stack_{tag}"), (B, C, Skv, n * Dv), f"v_cluster_{tag}")
        o = b.attention(b.plain_spec(num_heads=C, num_kv_heads=C, v_head_dim=n * Dv), q_rep, k_rep, vm,
                        label=f"attention_{tag}")
        if n > 1:   # (B, C, Sq, n·Dv) -> (B, C·n, Sq, Dv)
            o = b.reshape(b.transpose(b.reshape(o, (B, C, Sq, n, Dv), f"out_split_{tag}"), (0, 1, 3, 2, 4),
                                      f"out_unstack_{tag}"), (B, C * n, Sq, Dv), f"out_members_{tag}")
        parts.append(o)
    out = b.concat(parts, 1, "cluster_heads")
    if order != list(range(H)):
        out = b.gather(out, list(np.argsort(order)), 1, "head_order")
    return [out]
