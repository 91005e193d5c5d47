"""Cost rules of the attention variant features, one per `kind` (fields as in docs/variants.md); which kind
uses which rule is the table in rules.py (nothing here registers itself).

Each rule rewrites an `AttentionWork` the way the published method changes the work:
what a cached token holds, how many keys each query sees, which heads compute. Formulas:
  mla          cache (latent + rope)·b per token for all heads (DeepSeek-V2/V3). Absorbed: one shared
               KV "head" with d_qk = latent + rope and d_v = latent (the value is the latent slice of the
               key entry, read once) plus the W_UK/W_UV absorptions per query. Naive: up-project the
               latent to H heads of K (d) and V (dv) for every cached token, write and re-read them.
  mtla         keys merged over time in chunks of `stride`: KV length and cache ÷ stride (a decoupled RoPE key,
               rope_dim > 0, is overwritten per token in its chunk's entry, not summed: still ÷ stride).
  grouped      Efficient Conformer: (S, d) -> (ceil(S/g), g·d) (zero-padded to a multiple of g, as the authors'
               code does): score FLOPs n²d -> n²d/g; the regrouping is a reshape of the padded q/k/v.
  strided      queries subsampled by `stride`.
  hilo         LITv2: `local_heads` attend within windows of wh·ww keys; the rest attend keys
               average-pooled by wh·ww.
  moh          MoH: each token runs top_k routed + shared heads: FLOPs × (top_k + shared)/H (routers='moh'
               adds the balancing-router logits and the gate softmaxes).
  chai         CHAI: scores computed once per head cluster: QK FLOPs × clusters/H; K read and cached for the
               cluster representatives only (V for every head). Online (online_probe = p):
               a prefill also computes every head's p×p probe probabilities, their H×H cosine distances and an
               average-linkage clustering (O(H³)) on the host, after copying H·p² scores there.
  knocking_heads  H×H mixing of q (and k, v) per token before attention.
  head_blocks  MW-MHA: per-head non-overlapping blocks (b keys per query, or the wrapped block's segment with
               shift; 0 = global) + the additive bias mask.
  multi_window / blocked_local / topk_sparse / block_sparse  keys seen per query: min(L, window),
               block + 2·halo, top_k, all (block_sparse: its mask is data).
  linear       recurrent state: 4·S·d·dv FLOPs per head, no L² term.
  conv_share   attention over the (h-kh+1)(w-kw+1) valid-convolution tokens plus the shared convs.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from attncc.ir.ops.attention_spec import MaskSpec

from .attention_cost import AttentionWork, visible_key_range, visible_pairs


class FeatureFieldError(AttributeError):
    """A cost rule read a field its feature does not declare (a rule/feature mismatch, never silently defaulted)."""


class FeatureFields:
    """A variant feature as one cost rule reads it: the fields, properties and methods its class declares and
    nothing else (no alias spellings, no defaults). Reading anything else raises FeatureFieldError naming the
    rule, the field and what the feature does declare. `attention_cost.apply_feature_rules` hands every rule
    its feature through this view."""

    __slots__ = ("_feature", "_rule")

    def __init__(self, feature, rule: str):
        self._feature = feature
        self._rule = rule

    def __getattr__(self, name: str):
        feat = self._feature
        cls = type(feat)
        fields = {f.name for f in dataclasses.fields(feat)} if dataclasses.is_dataclass(feat) else set()
        if name in fields or (not name.startswith("_") and hasattr(cls, name)):
            return getattr(feat, name)
        shown = sorted(fields | {n for n in dir(cls) if isinstance(getattr(cls, n, None), property)})
        raise FeatureFieldError(f"cost rule {self._rule!r} reads field {name!r}, which {cls.__name__} (attention "
                                f"feature {feat.kind!r}) does not declare; it declares {shown}")


def mla_rule(w: AttentionWork, feat, spec) -> None:
    latent, rope, absorbed = int(feat.latent_dim), int(feat.rope_dim), bool(feat.absorbed)
    nope = spec.head_dim - rope           # per-head no-position part of q/k
    dv = spec.v_head_dim
    H, b = w.q_heads, w.elem_bytes
    w.cache_bytes_per_token = (latent + rope) * b   # shared by all heads
    tokens = w.batch * w.kv_len
    weights = latent * H * (nope + dv) * b          # W_UK and W_UV
    if absorbed:
        w.kv_heads, w.qk_dim, w.v_dim = 1, latent + rope, latent
        w.kv_token_bytes = (latent + rope) * b      # value = latent slice of the key entry
        rows = w.batch * w.q_len * H
        w.extra_flops += 2 * rows * nope * latent + 2 * rows * latent * dv  # q·W_UK, o·W_UV
        w.extra_bytes += weights
        w.out_dim = dv
    else:
        w.kv_heads, w.qk_dim, w.v_dim = H, spec.head_dim, dv
        w.extra_flops += 2 * tokens * latent * H * (nope + dv)          # up-projection of every cached token
        decompressed = tokens * H * (spec.head_dim + dv) * b
        w.extra_bytes += weights + tokens * (latent + rope) * b + decompressed  # read latent, write K/V (re-read below)
        w.notes.append("MLA naive: latent up-projected to per-head K/V for every cached token and materialized")


def mtla_rule(w: AttentionWork, feat, spec) -> None:
    s = int(feat.stride)
    merged = math.ceil(w.kv_len / s)
    base_cache = w.cache_bytes_per_token if w.cache_bytes_per_token is not None else w.kv_heads * (w.qk_dim + w.v_dim) * w.elem_bytes
    w.cache_bytes_per_token = base_cache / s     # per original token
    w.pairs_per_head = visible_pairs(w.mask, w.q_len, w.kv_len) / s
    w.kv_read_scale *= merged / w.kv_len
    w.cache_len = w.kv_len
    w.extra_vector_flops += 2 * w.batch * w.kv_heads * w.kv_len * (w.qk_dim + w.v_dim)  # weighted temporal merge


def grouped_rule(w: AttentionWork, feat, spec) -> None:
    g = int(feat.group_size)
    w.q_len, w.kv_len = math.ceil(w.q_len / g), math.ceil(w.kv_len / g)
    w.qk_dim, w.v_dim = w.qk_dim * g, w.v_dim * g


def strided_rule(w: AttentionWork, feat, spec) -> None:
    w.q_len = math.ceil(w.q_len / int(feat.stride))


def hilo_rule(w: AttentionWork, feat, spec) -> None:
    win = int(feat.window[0]) * int(feat.window[1])      # (wh, ww) keys per window
    local = int(feat.local_heads)
    glob = w.q_heads - local
    pooled = math.ceil(w.kv_len / win)
    w.pairs_per_head = (local * w.q_len * min(win, w.kv_len) + glob * w.q_len * pooled) / w.q_heads
    # local heads read their window once; global heads read pooled K/V (pooling reads the full K/V once)
    w.kv_read_scale *= (local + glob * (pooled / w.kv_len)) / w.q_heads
    w.extra_bytes += w.batch * glob * w.kv_len * (w.qk_dim + w.v_dim) * w.elem_bytes * (w.kv_heads / w.q_heads)
    w.extra_vector_flops += w.batch * glob * w.kv_len * (w.qk_dim + w.v_dim)


def moh_rule(w: AttentionWork, feat, spec) -> None:
    active = min(w.q_heads, int(feat.top_k) + int(feat.shared_heads))
    frac = active / w.q_heads
    w.qk_fraction *= frac
    w.pv_fraction *= frac
    if w.q_len == 1:  # decode: KV heads of unrouted query heads are not read (MHA: one KV head per head)
        w.kv_read_scale *= min(1.0, math.ceil(active / w.group) / w.kv_heads)
    w.extra_bytes += w.batch * w.q_len * w.q_heads * w.elem_bytes     # head logits
    if feat.balanced:   # the authors' shared-vs-routed balancing router: 2 logits per token
        w.extra_bytes += w.batch * w.q_len * 2 * w.elem_bytes
        w.extra_vector_flops += w.batch * w.q_len * (4 * w.q_heads + 8)   # gate softmaxes and scales
    w.extra_vector_flops += w.batch * w.q_len * w.q_heads * (4 + w.v_dim)  # top-k softmax, output weighting


def chai_rule(w: AttentionWork, feat, spec) -> None:
    clusters = len(set(feat.clusters))
    w.qk_fraction *= clusters / w.q_heads
    # only the representatives' keys are read and cached (CHAI's K-cache saving); every head keeps its V
    w.kv_token_bytes = (w.qk_dim * clusters / w.kv_heads + w.v_dim) * w.elem_bytes
    w.cache_bytes_per_token = (clusters * w.qk_dim + w.kv_heads * w.v_dim) * w.elem_bytes
    p = int(feat.online_probe)
    if p and w.q_len > 1:   # online: the prompt call clusters the heads; decode steps reuse the assignment
        p = min(p, w.q_len, w.kv_len)
        H = w.q_heads
        w.extra_flops += 2 * w.batch * H * p * p * w.qk_dim                      # probe scores q[:p] k[:p]ᵀ
        w.extra_vector_flops += w.batch * (5 * H * p * p                         # scale + softmax of the probe
                                           + 3 * H * H * p * p                   # cosine distances
                                           + H ** 3)                             # average linkage merges
        w.extra_bytes += 2 * w.batch * H * p * p * 8                             # probabilities to the host, float64
        w.notes.append(f"chai online: heads clustered on the host from {p} probe tokens at the prefill "
                       "(a device->host sync; batch 1)")


def knocking_heads_rule(w: AttentionWork, feat, spec) -> None:
    targets = tuple(feat.targets)
    if "q" in targets:
        w.extra_flops += 2 * w.batch * w.q_len * w.q_heads ** 2 * w.qk_dim
    for t, dim in (("k", w.qk_dim), ("v", w.v_dim)):
        if t in targets:
            w.extra_flops += 2 * w.batch * w.kv_len * w.kv_heads ** 2 * dim


def head_blocks_rule(w: AttentionWork, feat, spec) -> None:
    """MW-MHA: a blocked head's query sees the keys of its b-token block that spec.mask leaves visible, a global
    head all visible keys (exact counts). The relative bias is an additive (H, S, S) mask gathered from the table:
    written once and read once per call. The TVM decomposition runs dense S² scores under that mask; the pairs
    here are the method's work (what a block-skipping kernel does), said in a note."""
    sizes = tuple(feat.block_sizes)
    shift = bool(feat.shift)
    n = w.q_len
    rows = np.arange(n, dtype=np.int64)
    lo, hi = visible_key_range(w.mask, n, w.kv_len, rows)
    total = 0
    for b in sizes:
        if b == 0:
            total += int(np.maximum(0, hi - lo + 1).sum())
            continue
        s = b // 2 if shift else 0
        r = (rows - s) % n                       # rolled order; a row's keys are one contiguous original run
        start_r = np.where(r < n - b, r // b * b, np.where(r < n - s, n - b, n - s))
        length = np.where(r < n - b, b, np.where(r < n - s, b - s, s))
        start = (start_r + s) % n
        total += int(np.maximum(0, np.minimum(hi, start + length - 1) - np.maximum(lo, start) + 1).sum())
    w.pairs_per_head = total / len(sizes)
    if feat.rel_bias:
        w.extra_bytes += 2 * w.q_heads * w.q_len * w.kv_len * w.elem_bytes
    w.notes.append("head_blocks: priced as blocked work; the cpu/cuda decomposition computes dense S² scores "
                   "under an (H, S, S) additive mask")


def multi_window_rule(w: AttentionWork, feat, spec) -> None:
    windows = tuple(feat.windows)
    total = 0
    for win in windows:
        m = w.mask if win is None else _and_window(w.mask, int(win))
        total += visible_pairs(m, w.q_len, w.kv_len)
    w.pairs_per_head = total / len(windows)


def _and_window(mask: MaskSpec, win: int) -> MaskSpec:
    left = win if mask.window_left is None else min(mask.window_left, win)
    right = mask.effective_window_right
    right = win if right is None else min(right, win)
    return MaskSpec(causal=False, alignment=mask.alignment, window_left=left, window_right=right)


def blocked_local_rule(w: AttentionWork, feat, spec) -> None:
    block, halo = int(feat.block_size), int(feat.halo)
    w.pairs_per_head = w.q_len * min(w.kv_len, block + 2 * halo)


def topk_sparse_rule(w: AttentionWork, feat, spec) -> None:
    w.pairs_per_head = w.q_len * min(w.kv_len, int(feat.top_k))
    w.extra_bytes += w.batch * w.q_heads * w.q_len * w.kv_len * w.elem_bytes  # connectivity scores input
    w.extra_vector_flops += w.batch * w.q_heads * w.q_len * w.kv_len * math.log2(max(2, w.kv_len))  # top-k select


def block_sparse_rule(w: AttentionWork, feat, spec) -> None:
    # the block mask is a run-time input, so the spec carries no density to price with
    w.notes.append("block_sparse: block density is data-dependent; priced dense (an upper bound)")


def uniform_rule(w: AttentionWork, feat, spec) -> None:
    w.extra_vector_flops += 2 * w.batch * w.q_heads * w.q_len * w.v_dim + w.batch * w.kv_heads * w.kv_len * w.v_dim


def global_query_rule(w: AttentionWork, feat, spec) -> None:
    rank = int(feat.key_rank)
    if rank:
        w.extra_flops += 2 * w.batch * w.kv_heads * w.kv_len * w.qk_dim * rank


def linear_rule(w: AttentionWork, feat, spec) -> None:
    # state S (d×dv) per head: update k vᵀ and read qᵀS per token, 2 FLOP per MAC each
    w.flops_override = 4.0 * w.batch * w.q_heads * w.q_len * w.qk_dim * w.v_dim
    w.cache_bytes_per_token = 0.0
    w.cache_len = 1
    w.extra_bytes += w.batch * w.q_heads * w.qk_dim * w.v_dim * w.elem_bytes  # the recurrent state
    w.notes.append("linear attention: recurrent state instead of a KV cache (state bytes counted as extra)")


def conv_share_rule(w: AttentionWork, feat, spec) -> None:
    (h, wd), (kh, kw) = feat.image_size, feat.kernel_size
    tokens = (int(h) - int(kh) + 1) * (int(wd) - int(kw) + 1)
    w.extra_flops += 2 * 3 * w.batch * w.q_heads * w.qk_dim * tokens * int(kh) * int(kw)
    w.q_len = w.kv_len = tokens


# ---- position biases as spec data (ALiBi, T5 buckets, Swin windows) -----------------------------------------
# Per visible score: ALiBi is slope_h·(j - pos_i) + s, one multiply-add from loop indices (Press et al., ICLR 2022,
# Sec. 3: a static, non-learned bias); T5's bucket is 9 ops (abs, compare, log, multiply, cast, min, select, add of
# the direction offset: transformers T5Attention._relative_position_bucket) + a table load and add; Swin's index
# is (dy, dx) from per-row/column coordinates: 2 subtracts and a multiply-add + a table load and add.
POSITION_BIAS_OPS_PER_SCORE = {"alibi": 2, "bucketed_bias": 11, "window_bias": 5}


def position_bias_rule(w: AttentionWork, feat, spec) -> None:
    pairs = w.batch * w.q_heads * visible_pairs(w.mask, w.q_len, w.kv_len)
    w.extra_vector_flops += POSITION_BIAS_OPS_PER_SCORE[feat.kind] * pairs
    if feat.kind != "alibi":
        entries = feat.entries()
        w.extra_bytes += w.q_heads * entries * 4      # the float32 per-head table, read once
    w.notes.append(f"{feat.kind}: bias computed per score from positions"
                   + ("" if feat.kind == "alibi" else " and a per-head table") +
                   ", no (B, H, Sq, Skv) mask read (the cpu/cuda decomposition gathers it into the kernel's "
                   "additive mask at build time)")


def talking_heads_rule(w: AttentionWork, feat, spec) -> None:
    """Talking-heads (Shazeer et al. 2020, Sec. 3): each mix is an (H, H) matmul per score position,
    2·B·Sq·Skv·H² FLOPs + the bias add; the mixes need every head of a score at once, so the (B, H, Sq, Skv) scores
    are written and read once per mix (what the decomposition runs; no per-head flash kernel)."""
    pairs = w.batch * w.q_len * w.kv_len
    mixes = int(bool(feat.pre)) + int(bool(feat.post))
    w.extra_flops += mixes * 2 * pairs * w.q_heads ** 2
    w.extra_vector_flops += mixes * pairs * w.q_heads
    w.extra_bytes += mixes * (2 * pairs * w.q_heads * w.elem_bytes + (w.q_heads ** 2 + w.q_heads) * w.elem_bytes)
    w.notes.append("talking_heads: scores materialized around the head mixes (B·H·Sq·Skv written and read per mix)")


def gated_positional_rule(w: AttentionWork, feat, spec) -> None:
    """ConViT GPSA (d'Ascoli et al. 2021, eq. 5): the positional map times V is a second (Sq x Skv)·(Skv x Dv) matmul
    per head, 2·B·H·Sq·Skv·Dv FLOPs, over the dense (1|B, H, Sq, Skv) map read once; the blend and the row
    renormalization are per output element."""
    w.extra_flops += 2 * w.batch * w.q_heads * w.q_len * w.kv_len * w.v_dim
    w.extra_bytes += w.q_heads * w.q_len * w.kv_len * w.elem_bytes
    w.extra_vector_flops += 4 * w.batch * w.q_heads * w.q_len * w.v_dim + w.q_heads * w.q_len * w.kv_len
