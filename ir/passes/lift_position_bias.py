"""lift-position-bias: turn a constant additive mask that is ALiBi, T5's bucketed bias or Swin's windowed bias into
the spec's position-bias score mod (ir/ops/attention_features/position_bias.py), so kernels compute the bias and
the cost model prices a per-head table (or nothing, for ALiBi) instead of a dense (B, H, Sq, Skv) input.

For each feature-free bhsd Attention whose additive mask is a Constant (static shapes: frontends fold the bias
code to one), with M the mask and "hidden" its entries <= -1e30 (-inf, finfo.min):
  candidates, in order: alibi (slopes fitted from neighbouring keys, accepted when they are the closed form for
  some max_bias), bucketed_bias (T5's published bucket configs), window_bias (Sq = Skv = wh·ww);
  a table is read from one batch row of M; R = M - bias on the visible entries.
Accepted when R is constant along every row (softmax ignores it) or the same for every head (Swin's shifted-window
regions: R stays the op's additive mask input, head axis 1). The hidden entries become the spec's causal field
when they are exactly the causal pattern, else a bool keep-mask input. Otherwise the op is unchanged and
graph.diagnostics gets {"kind": "position-bias-not-lifted", "node", "reason"} naming each candidate's failure.
lift-attention runs it on the graph it returns, so imports and every default pipeline get it.
Requires: lift-attention (it folds the mask's constant layout ops itself). Guarantees: same outputs up to fp32 rounding of the bias.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..graph import Graph, Node
from ..interpreter.attention_ref import position_keep_mask
from ..ops import Attention
from ..ops.attention_features.position_bias import Alibi, BucketedBias, WindowBias, alibi_slopes
from ._rewrite import constant_array
from .base import Pass, register_pass
from .constant_fold import ConstantFold

HIDDEN = -1e30
# T5 bucket configs tried (num_buckets, max_distance; T5/mT5/Flan-T5/LongT5 publish (32, 128)). A config's
# buckets at one length are only known up to refinement, so the coarsest that reproduces the bias is recorded
# (fewest distinct buckets at this length; (32, 128) first among equals): at the graph's static length every
# consistent config gives the same bias.
T5_CONFIGS = tuple((nb, md) for nb in (32, 8, 16, 64, 128) for md in (128, 16, 32, 64, 256, 512) if md > nb // 4)


class NoFit(Exception):
    """A candidate does not explain the mask; the message says which part."""


class NoBias(Exception):
    """The mask only hides keys (0 / -inf, up to a per-row constant): nothing to lift, nothing to report."""


def _tol(m: np.ndarray, visible: np.ndarray) -> float:
    """fp32 rounding allowance of the bias the model computed."""
    return 1e-5 * (1.0 + float(np.abs(m[visible]).max(initial=0.0)))


def _fit_alibi(spec, m, visible, q_len, kv_len):
    H = spec.num_heads
    pair = visible[..., 1:] & visible[..., :-1]
    if m.shape[1] != H or not pair.any():
        raise NoFit("the bias does not vary per head" if m.shape[1] != H else "no two neighbouring visible keys")
    step = np.where(pair, m[..., 1:] - m[..., :-1], np.nan)
    if np.isnan(step.transpose(1, 0, 2, 3).reshape(H, -1)).all(axis=1).any():
        raise NoFit("a head has no two neighbouring visible keys")
    slopes = np.nanmedian(step.transpose(1, 0, 2, 3).reshape(H, -1), axis=1)
    n = 2 ** math.ceil(math.log2(H))
    if not np.isfinite(slopes).all() or slopes[0] <= 0:
        raise NoFit(f"head 0's score step per key is {slopes[0]:.6g}, not a positive slope")
    first = 1 if n == H else 2        # head 0's slope is 2^(-max_bias·first/n)
    max_bias = float(np.round(-math.log2(slopes[0]) * n / first, 6))
    want = alibi_slopes(H, max_bias)
    if not np.allclose(slopes, want, rtol=1e-4, atol=0):
        raise NoFit(f"per-head slopes {np.round(slopes, 6).tolist()} are not ALiBi's closed form "
                    f"{np.round(want, 6).tolist()} (max_bias {max_bias:g})")
    mod = Alibi(max_bias=max_bias)
    return mod, None


def _fit_table(spec, mod, m, visible, q_len, kv_len):
    H = spec.num_heads
    if m.shape[1] != H:
        raise NoFit("the bias does not vary per head")
    idx = mod.index(q_len, kv_len, spec.mask.alignment)
    tol = _tol(m, visible)
    last = "no batch row"
    for b in range(min(m.shape[0], 4)):          # Swin: the first window has no shifted-region offsets
        table = np.zeros((H, mod.entries()))
        ok = True
        for e in np.unique(idx):
            sel = (idx == e)[None] & visible[b]
            vals = m[b][sel.repeat(H, 0) if sel.shape[0] == 1 else sel].reshape(H, -1) if sel.any() else None
            if vals is None:
                continue
            if np.ptp(vals, axis=1).max() > tol:
                ok, last = False, f"entry {int(e)} of the table takes different values within batch row {b}"
                break
            table[:, e] = vals[:, 0]
        if ok:
            return mod, table
    raise NoFit(last)


def _candidates(spec, q_len, kv_len):
    yield "alibi", lambda m, vis: _fit_alibi(spec, m, vis, q_len, kv_len)
    t5 = []
    for bidir in (True, False):
        for nb, md in T5_CONFIGS:
            try:
                mod = BucketedBias(num_buckets=nb, max_distance=md, bidirectional=bidir)
            except ValueError:
                continue
            t5.append((len(np.unique(mod.index(q_len, kv_len, spec.mask.alignment))), len(t5), mod))
    for _, _, mod in sorted(t5, key=lambda t: t[:2]):
        name = f"bucketed_bias({mod.num_buckets},{mod.max_distance},{'bi' if mod.bidirectional else 'uni'})"
        yield name, lambda m, vis, mod=mod: _fit_table(spec, mod, m, vis, q_len, kv_len)
    if q_len == kv_len:
        for wh in range(2, q_len):
            if q_len % wh == 0 and q_len // wh >= 2:
                mod = WindowBias(window=(wh, q_len // wh))
                yield f"window_bias{mod.window}", lambda m, vis, mod=mod: _fit_table(spec, mod, m, vis, q_len, kv_len)


def _residual_form(m, bias, visible, tol):
    """'rows' (softmax-invariant), 'heads' (head-independent: kept as an input) or None."""
    r = np.where(visible, m - bias[None], np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # rows / columns with every key hidden
        rows = np.nanmax(r, -1, keepdims=True) - np.nanmin(r, -1, keepdims=True)
    if np.nan_to_num(rows, nan=0.0).max(initial=0.0) <= tol:
        return "rows", r
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        heads = np.nanmax(r, 1) - np.nanmin(r, 1)
    if np.nan_to_num(heads, nan=0.0).max(initial=0.0) <= tol:
        return "heads", r
    return None, r


def fit(spec, mask: np.ndarray, q_len: int, kv_len: int):
    """(mod, table | None, new MaskSpec, new mask array | None, mask kind) or raises NoFit naming each failure."""
    m = np.asarray(mask, np.float64).reshape((1,) * (4 - mask.ndim) + mask.shape)
    m = np.broadcast_to(m, (m.shape[0], m.shape[1], q_len, kv_len))
    visible = m > HIDDEN
    if not visible.any():
        raise NoFit("every entry of the mask is hidden")
    tol = _tol(m, visible)
    if _residual_form(m, np.zeros(m.shape[1:]), visible, tol)[0] == "rows":
        raise NoBias()
    failures = []
    for name, attempt in _candidates(spec, q_len, kv_len):
        try:
            mod, table = attempt(m, visible)
        except NoFit as e:
            failures.append(f"{name}: {e}")
            continue
        bias = mod.bias(spec.replace(score_mods=()), q_len, kv_len, table)
        form, r = _residual_form(m, bias, visible, tol)
        if form is None:
            failures.append(f"{name}: the rest of the mask after the bias varies along rows and across heads")
            continue
        new_mask, arr, kind = _rest_of_mask(spec, m, r, visible, form, q_len, kv_len)
        return mod, table, new_mask, arr, kind
    raise NoFit(_summary(failures))


def _summary(failures: list[str]) -> str:
    """One failure per candidate kind (the first), with how many configs of that kind also failed."""
    by_kind: dict[str, list[str]] = {}
    for f in failures:
        by_kind.setdefault(f.split("(")[0].split(":")[0], []).append(f)
    parts = [fs[0] + (f" (and {len(fs) - 1} more {kind} configs)" if len(fs) > 1 else "") for kind, fs in by_kind.items()]
    return "no position bias explains the additive mask: " + "; ".join(parts)


def _rest_of_mask(spec, m, r, visible, form, q_len, kv_len):
    """What stays of the mask beside the bias: (MaskSpec, array or None, 'none' | 'bool' | 'additive')."""
    if form == "heads":
        rest = np.where(visible, r, -np.inf)[:, :1]
        return dataclasses.replace(spec.mask, input="additive"), rest.astype(np.float32), "additive"
    hidden = ~visible
    if not hidden.any():
        return dataclasses.replace(spec.mask, input="none"), None, "none"
    causal = dataclasses.replace(spec.mask, causal=True, input="none")
    want = position_keep_mask(causal, q_len, kv_len)
    have = position_keep_mask(spec.mask, q_len, kv_len)
    keep = visible if have is None else (visible & have)
    if np.array_equal(np.broadcast_to(want, keep.shape), keep):
        return causal, None, "none"
    heads = keep[:, :1] if (keep == keep[:, :1]).all() else keep
    return dataclasses.replace(spec.mask, input="bool"), np.ascontiguousarray(heads), "bool"


def _lift_one(graph: Graph, node: Node) -> str | None:
    """Rewrite `node` in place; None on success, "" when it is no candidate, else why not."""
    spec = node.op.spec
    named = node.op.named_inputs(node)
    q, k = named["query"], named["key"]
    q_len, kv_len = q.shape[2], k.shape[2]
    mask = constant_array(graph, named["mask"])
    if mask is None or not (isinstance(q_len, int) and isinstance(kv_len, int)):
        return ""   # a run-time mask (padding) or symbolic lengths: not a position-bias candidate, nothing to report
    try:
        mod, table, new_mask, arr, kind = fit(spec, mask, q_len, kv_len)
    except NoBias:
        return ""
    except NoFit as e:
        return str(e)
    inputs = [named["query"], named["key"], named["value"]]
    if kind != "none":
        inputs.append(graph.add_constant(arr, name=f"{node.name}_mask_rest"))
    if table is not None:
        inputs.append(graph.add_constant(table.astype(np.float32), name=f"{node.name}_rel_table"))
    node.op = Attention(spec=spec.replace(mask=new_mask, score_mods=(mod,)), tiling=node.op.tiling)
    node.inputs = inputs
    node.op.infer(node)
    return None


def _foldable(v, budget: int = 64) -> bool:
    """Whether `v` is computed from constants only (a short walk up its producers)."""
    stack, seen = [v], set()
    while stack:
        x = stack.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if x.producer is None or len(seen) > budget:
            return False
        if x.producer.op.op_name != "Constant":
            stack.extend(x.producer.inputs)
    return True


def _candidate(spec) -> bool:
    return spec.mask.input == "additive" and not spec.features_list() and spec.layout == "bhsd" \
        and not spec.kv_cache and spec.rope is None and not spec.mask.kv_lengths


@register_pass
@dataclass(frozen=True)
class LiftPositionBias(Pass):
    """Replace constant ALiBi / T5 / Swin additive masks by the spec's position-bias score mods."""

    name: ClassVar[str] = "lift-position-bias"

    def run(self, graph: Graph) -> Graph:
        sites = [n for n in graph.find("Attention") if _candidate(n.op.spec)]
        if any(constant_array(graph, n.op.named_inputs(n)["mask"]) is None and _foldable(n.op.named_inputs(n)["mask"])
               for n in sites):
            graph = ConstantFold().run(graph)     # lift-attention lays the mask out with Reshape/Transpose ops
            sites = [n for n in graph.find("Attention") if _candidate(n.op.spec)]
        for node in sites:
            reason = _lift_one(graph, node)
            if reason == "":
                continue
            entry = {"kind": "position-bias-lifted" if reason is None else "position-bias-not-lifted",
                     "node": node.name}
            entry.update({"spec": node.op.spec.summary()} if reason is None else {"reason": reason})
            if not any(d.get("kind") == entry["kind"] and d.get("node") == node.name for d in graph.diagnostics):
                graph.diagnostics.append(entry)
        graph.dead_code_elimination()
        return graph
