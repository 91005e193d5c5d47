"""canonicalize-attention: put every Attention op in the one form later passes and backends match.

Rules, applied per Attention node:
- explicit scale: a positive scalar constant multiplying (or dividing) the query — or the key when
  there is no KV cache (the cached key must stay unscaled) — is folded into `spec.scale`.
- layout: logical axes are always (B, H, S, D); `spec.layout` says how the operands are stored.
  Transpose(0, 2, 1, 3) ops around the op (what frontends emit for `view(B,S,H,D).transpose(1,2)`)
  are absorbed by flipping the layout when that removes more transposes than it adds, so no
  layout copy is materialized.
- masks: a constant mask (bool keep-mask or additive 0/-inf bias) that equals a causal or
  sliding-window pattern becomes `MaskSpec` fields; an all-visible constant mask is dropped. So does
  a mask computed from dim sizes alone (no graph input among its producers, e.g. HF's causal mask
  from aranges with dynamic seq) when the interpreter gives the same pattern at several sizes.
Redundant casts and reshapes are `canonicalize`'s job (ir/passes/canonicalize.py).
Requires: nothing (run after lift-attention). Guarantees: same outputs; no swap-transpose pairs
around Attention that a layout flip would remove; no constant positional mask tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import dims as D
from ..graph import Graph, Node, Value
from ..interpreter.attention_ref import position_keep_mask
from ..ops import Attention, MaskSpec, Transpose
from ._rewrite import SWAP_SEQ_HEADS, constant_array, is_swap_transpose, release, replace_node, with_spec
from ._shape_only import evaluate_at, shape_only_ancestry, shape_symbols
from .base import Pass, register_pass
from .recognize.common import Emitter, MatchContext
from .recognize.scale import peel_scale, scaled_under_layout

LAYOUT_INPUTS = ("query", "key", "value", "past_key", "past_value")
# additive mask entries at or below this are "masked": exp(score - 1e9) underflows to exactly 0
MASKED_BIAS = -1e9
# sizes (smallest symbol) at which a mask computed from dims is evaluated: the largest first, so a
# window narrower than it shows; all > 1 so causal differs from all-visible
SHAPE_TRIALS = (12, 5, 3)


def _scalar(graph: Graph, v: Value) -> float | None:
    a = constant_array(graph, v)
    if a is None or a.size != 1 or a.dtype.kind != "f":
        return None
    return float(a.reshape(()))


def fold_scale(graph: Graph, node: Node) -> Node:
    """Fold `x * c` / `x / c` (c > 0 scalar constant) on query/key into spec.scale."""
    named = node.op.named_inputs(node)
    slots = ("query",) if node.spec.kv_cache else ("query", "key")
    for slot in slots:
        p = named[slot].producer
        if p is None or p.op.op_name != "Binary" or p.op.fn not in ("mul", "div"):
            node = _fold_scale_under_layout(graph, node, slot)
            named = node.op.named_inputs(node)
            continue
        a, b = p.inputs
        c, x = (_scalar(graph, b), a) if _scalar(graph, b) is not None else (_scalar(graph, a), b)
        if c is None or c <= 0 or (p.op.fn == "div" and x is not a) or tuple(x.shape) != tuple(p.outputs[0].shape):
            continue
        factor = c if p.op.fn == "mul" else 1.0 / c
        inputs = [x if v is named[slot] else v for v in node.inputs]
        node = replace_node(graph, node, with_spec(node, scale=node.spec.scale * factor), inputs)[0].producer
        named = node.op.named_inputs(node)
    return node


def _fold_scale_under_layout(graph: Graph, node: Node, slot: str) -> Node:
    """Fold a positive scalar on q/k applied before the head-split Reshape/Transpose (OPT and Whisper scale
    `q_proj(x)` and then call SDPA with scale=1): the layout ops are re-applied to the unscaled value."""
    ctx = MatchContext(graph)
    v = node.op.named_inputs(node)[slot]
    under = scaled_under_layout(ctx, v)
    if under is None or under[1] <= 0:
        return node
    x, factor = peel_scale(ctx, v, Emitter(graph, f"{node.name}_{slot}_unscaled", node.source))
    inputs = [x if i is v else i for i in node.inputs]
    return replace_node(graph, node, with_spec(node, scale=node.spec.scale * factor), inputs)[0].producer


def _swap_users(graph: Graph, v: Value) -> list[Node] | None:
    """The swap-transpose nodes reading `v` when they are its only uses, else None."""
    users = graph.consumers(v)
    if not users or any(o is v for o in graph.outputs):
        return None
    if all(u.op.op_name == "Transpose" and tuple(u.op.perm) == SWAP_SEQ_HEADS for u in users):
        return users
    return None


def _has_uses(graph: Graph, v: Value) -> bool:
    return any(o is v for o in graph.outputs) or any(x is v for n in graph.nodes for x in n.inputs)


def fold_layout(graph: Graph, node: Node) -> Node:
    """Flip spec.layout when that absorbs more swap transposes than it inserts."""
    names = node.spec.input_names()
    removed = added = 0
    for name, v in zip(names, node.inputs):
        if name in LAYOUT_INPUTS:
            removed, added = (removed + 1, added) if is_swap_transpose(v) else (removed, added + 1)
    for out in node.outputs:
        users = _swap_users(graph, out)
        if users:
            removed += len(users)
        elif _has_uses(graph, out):
            added += 1
    if removed <= added:
        return node
    inputs = []
    for name, v in zip(names, node.inputs):
        if name not in LAYOUT_INPUTS:
            inputs.append(v)
        elif is_swap_transpose(v):
            inputs.append(v.producer.inputs[0])
        else:
            inputs.append(graph.add1(Transpose(SWAP_SEQ_HEADS), [v], name=f"{node.name}_{name}_t", source=node.source))
    flipped = "bshd" if node.spec.layout == "bhsd" else "bhsd"
    release(graph, node)
    new = graph.add(with_spec(node, layout=flipped), inputs, name=node.name, source=node.source)
    for old, nv in zip(node.outputs, new):
        users = _swap_users(graph, old)
        if users:
            for u in users:
                graph.replace_all_uses(u.outputs[0], nv)
        else:
            graph.replace_all_uses(old, graph.add1(Transpose(SWAP_SEQ_HEADS), [nv], name=f"{old.name}_t", source=node.source))
    return new[0].producer


def _keep_pattern(mask: np.ndarray, kind: str, q_len: int, kv_len: int) -> np.ndarray | None:
    """The (q_len, kv_len) keep-matrix of a constant mask shared by every batch and head, else None."""
    if mask.ndim < 2 or mask.shape[-2:] != (q_len, kv_len):
        return None
    rows = mask.reshape(-1, q_len, kv_len)
    if not all(np.array_equal(rows[0], r) for r in rows[1:]):
        return None
    if kind == "bool":
        return rows[0].astype(bool)
    m = rows[0].astype(np.float64)
    if not np.all((m == 0) | (m <= MASKED_BIAS)):
        return None  # a real bias, not a mask
    keep = m == 0
    # additive masking of a whole row averages all keys; a keep-mask gives zeros: only equal when no row is empty
    return keep if keep.any(axis=1).all() else None


def _positional_spec(keep: np.ndarray, base: MaskSpec) -> MaskSpec | None:
    """A MaskSpec (no tensor input) whose causal/window pattern equals `keep`, else None."""
    q_len, kv_len = keep.shape
    if keep.all():
        return MaskSpec(kv_lengths=base.kv_lengths)
    for alignment in ("top_left", "bottom_right"):
        offset = kv_len - q_len if alignment == "bottom_right" else 0
        # window edges read off the rows least likely to be clipped by the sequence ends
        lefts = [None] + ([q_len - 1 + offset - int(np.argmax(keep[-1]))] if keep[-1].any() else [])
        rights = [None] + ([kv_len - 1 - int(np.argmax(keep[0][::-1])) - offset] if keep[0].any() else [])
        for causal in (True, False):
            for left in lefts:
                for right in ([None] if causal else rights):
                    if (left is not None and left < 0) or (right is not None and right < 0):
                        continue
                    cand = MaskSpec(causal=causal, alignment=alignment, window_left=left, window_right=right,
                                    kv_lengths=base.kv_lengths)
                    want = position_keep_mask(cand, q_len, kv_len)
                    if want is not None and np.array_equal(want, keep):
                        return cand
    return None


def _spec_for_keep(spec, data: np.ndarray, q_len: int, kv_len: int) -> MaskSpec | None:
    """The positional MaskSpec equal to mask tensor `data` (with the op's own mask fields), else None."""
    keep = _keep_pattern(data, spec.mask.input, q_len, kv_len)
    if keep is None:
        return None
    existing = position_keep_mask(spec.mask, q_len, kv_len)
    if existing is not None:
        keep = keep & existing
    return _positional_spec(keep, spec.mask)


def _computed_mask_spec(graph: Graph, spec, mask: Value, q_len, kv_len) -> MaskSpec | None:
    """A mask computed from dim sizes alone (aranges/cumsums of ones compared, AND-ed with masks of
    ones...): the MaskSpec read off the largest trial size, kept only when it reproduces the mask
    exactly at every trial size (a pattern that changes with the size is not one MaskSpec)."""
    nodes = shape_only_ancestry(graph, mask)
    if nodes is None:
        return None
    symbols = shape_symbols(nodes, (q_len, kv_len))
    found = None
    for base in SHAPE_TRIALS:
        dims = {s: base + 4 * i for i, s in enumerate(symbols)}  # distinct symbols, distinct sizes
        data = evaluate_at(graph, nodes, mask, dims)
        q, kv = D.evaluate(q_len, dims), D.evaluate(kv_len, dims)
        if data is None:
            return None
        if found is None:
            found = _spec_for_keep(spec, data, q, kv)
            if found is None:
                return None
        else:
            keep = _keep_pattern(data, spec.mask.input, q, kv)
            if keep is None:
                return None
            existing, want = position_keep_mask(spec.mask, q, kv), position_keep_mask(found, q, kv)
            if not np.array_equal(keep if existing is None else keep & existing,
                                  np.ones((q, kv), bool) if want is None else want):
                return None
        if not symbols:
            break  # static: one evaluation is the whole truth
    return found


def fold_constant_mask(graph: Graph, node: Node) -> Node:
    """Replace a positional mask tensor — constant, or computed from dim sizes only — by MaskSpec fields."""
    spec = node.spec
    if spec.mask.input == "none" or spec.kv_cache:
        return node
    named = node.op.named_inputs(node)
    data = constant_array(graph, named["mask"])
    q, k = named["query"], named["key"]
    seq_ax = 2 if spec.layout == "bhsd" else 1
    q_len, kv_len = q.shape[seq_ax], k.shape[seq_ax]
    if data is not None:
        if not isinstance(q_len, int) or not isinstance(kv_len, int):
            return node
        mask = _spec_for_keep(spec, data, q_len, kv_len)
    else:
        mask = _computed_mask_spec(graph, spec, named["mask"], q_len, kv_len)
    if mask is None:
        return node
    inputs = [v for name, v in zip(spec.input_names(), node.inputs) if name != "mask"]
    return replace_node(graph, node, with_spec(node, mask=mask), inputs)[0].producer


@register_pass
@dataclass(frozen=True)
class CanonicalizeAttention(Pass):
    """Explicit scale, layout transposes absorbed into spec.layout, constant masks as MaskSpec fields."""

    name: ClassVar[str] = "canonicalize-attention"
    fold_layout: bool = True

    def run(self, graph: Graph) -> Graph:
        for node in graph.find("Attention"):
            if node.spec.features_list():
                continue  # variant features define their own operand meaning; leave them alone
            node = fold_scale(graph, node)
            node = fold_constant_mask(graph, node)
            if self.fold_layout:
                fold_layout(graph, node)
        graph.dead_code_elimination()
        return graph
