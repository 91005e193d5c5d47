"""Counting one attention op: FLOPs, bytes per memory level for a tiling, KV-cache size.

The variant is data: `AttentionWork` starts as plain attention (MHA/GQA/MQA by head ratio,
masks from MaskSpec) and each spec feature's rule in `rules.ATTENTION_COST_RULES[kind]` rewrites
it (MLA shrinks the cached token to latent+rope, MTLA divides the KV length by the stride,
grouped attention trades length for width, ...). Then one counter prices every variant:

  FLOPs      2·pairs·(d_qk + d_v) summed over heads (2 per MAC; pairs = visible (q, k) pairs)
  main bytes Q read + O write + K/V read once per query block (FlashAttention-2 loop order:
             query blocks outside, KV streamed inside, so KV is re-read ⌈rows / q_block⌉ times,
             only over the key range the mask leaves visible to that block; `kv_read_bytes`).
             The re-reads are priced at the largest on-chip level (L2 / L3) instead when one kv
             head's K and V stay there, as a matmul's reused operand is. GQA packs the
             g query heads sharing a KV head into the same block (rows = g·Lq), so decode reads
             each KV head once.
  tile bytes Q in and O out per query block plus a K and V tile per (q tile, kv tile) step at the tiled
             level; the working set (attention_tile_footprint) must fit it.

Pricing sees the kernel the tiles describe (`executed_tiles`): a prefill kernel runs one task per
(batch, query head, query block) and visits whole kv blocks, so causal and window masks execute
the visited blocks, not the ideal triangle; a split-KV decode kernel (a tiling with num_splits,
or every query row of a kv head in one block) runs one task per (batch, kv head, split) and
merges the splits' partial outputs (q_len <= DECODE_MAX_QUERIES always runs the decode kernel). The two are priced with their own efficiency factors
("attention.prefill" / "attention.decode" in the spec's efficiency.by_op).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from attncc.ir.ops.attention import Tiling
from attncc.ir.ops.attention_spec import AttentionSpec, MaskSpec
from attncc.ir.types import DTYPE_BYTES

from .hardware import HardwareSpec, get_hardware
from .pricing import OpCost, price

# Softmax work per score: scale, running max, subtract, exp, sum (online softmax), counted explicitly.
SOFTMAX_FLOPS_PER_SCORE = 5
SOFTCAP_FLOPS_PER_SCORE = 3   # divide, tanh, multiply
MASK_FLOPS_PER_SCORE = 1
MASK_PASS_FLOPS_PER_SCORE = 3  # executed: position compares and a select on every score of a cut block


@dataclass
class AttentionWork:
    """The attention problem as the counter sees it; feature rules rewrite its fields."""

    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    qk_dim: int
    v_dim: int
    elem_bytes: int
    mask: MaskSpec
    qk_fraction: float = 1.0           # share of score FLOPs computed (CHAI clusters, MoH, sparsity)
    pv_fraction: float = 1.0           # share of PV FLOPs computed
    pairs_per_head: float | None = None  # override of the mask's visible pairs per head
    kv_read_scale: float = 1.0         # multiplier on KV bytes read (decode head skipping, pooling)
    kv_token_bytes: float | None = None  # bytes of one cached token of one kv head read (None: (d_qk+d_v)·b)
    cache_bytes_per_token: float | None = None  # per token per layer, all kv heads (None: kv_heads·(d_qk+d_v)·b)
    cache_len: int | None = None       # tokens kept in the cache (None: kv_len)
    out_dim: int | None = None          # output width per head when it differs from v_dim (MLA absorbed)
    flops_override: float | None = None  # for non-softmax variants (linear attention)
    extra_flops: float = 0.0           # projections a variant adds (MLA absorption, knocking heads)
    extra_vector_flops: float = 0.0
    extra_bytes: float = 0.0           # weights / side inputs a variant reads, materialized tensors
    notes: list[str] = field(default_factory=list)

    @property
    def group(self) -> int:
        return max(1, self.q_heads // self.kv_heads)


# how one feature rewrites the work: (work, the feature as attention_rules.FeatureFields, spec) -> None
AttentionCostRule = Callable[[AttentionWork, Any, AttentionSpec], None]


# ---- masks ----------------------------------------------------------------------------
def visible_key_range(mask: MaskSpec, q_len: int, kv_len: int, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive [lo, hi] key range visible to query rows at `positions` (hi < lo: none)."""
    offset = kv_len - q_len if mask.alignment == "bottom_right" else 0
    pos = positions + offset
    lo = np.zeros_like(pos) if mask.window_left is None else np.maximum(0, pos - mask.window_left)
    wr = mask.effective_window_right
    hi = np.full_like(pos, kv_len - 1) if wr is None else np.minimum(kv_len - 1, pos + wr)
    return lo, hi


def visible_pairs(mask: MaskSpec, q_len: int, kv_len: int) -> int:
    """Number of (query, key) pairs the mask lets through, per head (exact; windows give min(L, w)-style counts)."""
    lo, hi = visible_key_range(mask, q_len, kv_len, np.arange(q_len, dtype=np.int64))
    return int(np.maximum(0, hi - lo + 1).sum())


# ---- tiles ----------------------------------------------------------------------------
def attention_tile_footprint(spec: AttentionSpec, tiling: Tiling, dtype: str) -> int:
    """Bytes of one tile's working set: Q and O blocks, K and V blocks, the score block.

    (q_block·(d + dv) + kv_block·(d + dv) + q_block·kv_block) · bytes — must fit the level tiled for.
    """
    if tiling is None or not tiling.q_block or not tiling.kv_block:
        raise ValueError(f"tiling needs q_block and kv_block to size a tile, got {tiling}")
    d, dv = spec.head_dim, spec.v_head_dim
    qb, kb = tiling.q_block, tiling.kv_block
    return (qb * (d + dv) + kb * (d + dv) + qb * kb) * DTYPE_BYTES[dtype]


def _footprint(work: AttentionWork, qb: int, kb: int) -> int:
    return (qb * (work.qk_dim + work.v_dim) + kb * (work.qk_dim + work.v_dim) + qb * kb) * work.elem_bytes


def _kv_tokens_read(work: AttentionWork, q_block: int) -> tuple[int, int]:
    """(KV tokens streamed per kv head summed over query blocks, number of query blocks)."""
    rows = work.q_len * work.group
    nblk = max(1, math.ceil(rows / q_block))
    # packed rows are position-major, so block b covers positions [b·qb/g, ((b+1)·qb-1)/g]
    starts = (np.arange(nblk, dtype=np.int64) * q_block) // work.group
    ends = np.minimum(((np.arange(nblk, dtype=np.int64) + 1) * q_block - 1) // work.group, work.q_len - 1)
    lo, _ = visible_key_range(work.mask, work.q_len, work.kv_len, starts)
    _, hi = visible_key_range(work.mask, work.q_len, work.kv_len, ends)
    return int(np.maximum(0, hi - lo + 1).sum()), nblk


def default_tiling(work: AttentionWork, hw: HardwareSpec) -> Tiling:
    """Tile sizes (powers of two) minimizing main-memory bytes while the tile fits the tiled level."""
    cap = hw.on_chip_bytes
    rows = work.q_len * work.group
    best = None
    for qb in (2 ** i for i in range(0, 13)):
        if qb > 2 * rows and qb > 16:
            break
        for kb in (2 ** i for i in range(4, 13)):
            if _footprint(work, qb, kb) > cap:
                break
            tokens, _ = _kv_tokens_read(work, qb)
            key = (tokens, -qb, -kb)
            if best is None or key < best[0]:
                best = (key, qb, kb)
    if best is None:  # even the smallest tile spills; price it honestly with the smallest
        return Tiling(q_block=1, kv_block=16, target=hw.name)
    return Tiling(q_block=best[1], kv_block=best[2], target=hw.name)


# Query lengths served by a split-KV decode kernel (the CPU backend's DECODE_MAX_Q; FlashDecoding likewise
# targets a handful of queries); longer ones run the prefill kernel.
DECODE_MAX_QUERIES = 8


@dataclass
class ExecutedTiles:
    """What the kernel for a tiling really runs (per query head, plain masks)."""

    decode: bool
    pairs_per_head: int      # (query, key) pairs in the visited tiles, padded rows included
    tasks: int               # parallel tasks
    num_splits: int = 1      # decode: KV splits merged at the end
    masked_pairs_per_head: int = 0  # pairs in visited blocks the mask cuts through (per-score mask pass)


def executed_tiles(work: AttentionWork, tiling: Tiling) -> ExecutedTiles:
    """Pairs computed by the tiled kernel: whole kv blocks inside each block's visible key range."""
    qb, kb = tiling.q_block or 1, tiling.kv_block or 16
    kv_len = work.kv_len
    if tiling.num_splits or work.q_len <= DECODE_MAX_QUERIES:  # split-KV decode: a kv head's query rows together
        pos = np.arange(work.q_len, dtype=np.int64)
        lo_all, hi_all = visible_key_range(work.mask, work.q_len, kv_len, pos)
        lo, hi = int(lo_all.min()), int(hi_all.max()) + 1
        ns = max(1, min(tiling.num_splits or 1, -(-kv_len // kb)))
        chunk = -(-(-(-kv_len // ns)) // kb) * kb       # split boundaries on kv-block boundaries
        ns = -(-kv_len // chunk)
        keys = 0
        for s in range(ns):
            a, b = max(s * chunk, lo), min(s * chunk + chunk, hi)
            if b > a:
                keys += min(-(-b // kb) * kb, kv_len) - (a // kb) * kb
        return ExecutedTiles(True, work.q_len * keys, work.batch * work.kv_heads * ns, ns)
    nqb = -(-work.q_len // qb)
    q0 = np.arange(nqb, dtype=np.int64) * qb
    q1 = np.minimum(q0 + qb, work.q_len) - 1
    lo, _ = visible_key_range(work.mask, work.q_len, kv_len, q0)
    _, hi = visible_key_range(work.mask, work.q_len, kv_len, q1)
    first = lo // kb
    end = np.minimum(-(-(hi + 1) // kb) * kb, kv_len)
    keys = np.where(hi >= lo, end - first * kb, 0)
    masked = 0
    if not work.mask.is_empty:  # blocks the mask cuts through take a per-score masking pass; full ones skip it
        lo_last, _ = visible_key_range(work.mask, work.q_len, kv_len, q1)
        _, hi_first = visible_key_range(work.mask, work.q_len, kv_len, q0)
        visited = np.where(hi >= lo, -(-(hi + 1) // kb) - first, 0)
        full_first = np.maximum(-(-lo_last // kb), first)
        full_last = np.minimum((np.minimum(hi_first, kv_len - 1) + 1) // kb - 1, -(-(hi + 1) // kb) - 1)
        full = np.maximum(0, full_last - full_first + 1)
        masked = int(qb * kb * np.maximum(0, visited - full).sum())
    return ExecutedTiles(False, int(qb * keys.sum()), work.batch * work.q_heads * nqb, masked_pairs_per_head=masked)


# ---- counting -------------------------------------------------------------------------
def plain_work(spec: AttentionSpec, batch: int, q_len: int, kv_len: int, dtype: str) -> AttentionWork:
    """The work of `spec` before its features: MHA/GQA/MQA by head ratio with its mask."""
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; supported: {sorted(DTYPE_BYTES)}")
    for name, v in (("batch", batch), ("q_len", q_len), ("kv_len", kv_len)):
        if not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"attention {name} must be a positive int, got {v!r}")
    return AttentionWork(int(batch), spec.num_heads, spec.num_kv_heads, int(q_len), int(kv_len), spec.head_dim,
                         spec.v_head_dim, DTYPE_BYTES[dtype], spec.mask)


def apply_feature_rules(work: AttentionWork, spec: AttentionSpec) -> AttentionWork:
    """Let every feature of `spec` rewrite the work through its rule in `rules.ATTENTION_COST_RULES`; a rule
    reads only the fields its feature declares (attention_rules.FeatureFields)."""
    from .attention_rules import FeatureFields   # here, not above: both modules build on AttentionWork
    from .rules import ATTENTION_COST_RULES

    for feat in spec.features_list():
        rule = ATTENTION_COST_RULES.get(feat.kind)
        if rule is None:
            work.notes.append(f"no cost rule for feature {feat.kind!r}: counted as plain attention "
                              f"(rules: {', '.join(sorted(ATTENTION_COST_RULES))})")
            continue
        rule(work, FeatureFields(feat, rule.__name__), spec)
    return work


def count_work(work: AttentionWork, tiling: Tiling, hw: HardwareSpec, spec: AttentionSpec | None = None) -> OpCost:
    """FLOPs and bytes of `work` under `tiling` on `hw` (no pricing)."""
    b = work.elem_bytes
    pairs_head = work.pairs_per_head if work.pairs_per_head is not None else visible_pairs(work.mask, work.q_len, work.kv_len)
    pairs = work.batch * work.q_heads * pairs_head
    core = 2 * pairs * (work.qk_dim * work.qk_fraction + work.v_dim * work.pv_fraction)
    if work.flops_override is not None:
        core = work.flops_override
    per_score = SOFTMAX_FLOPS_PER_SCORE + (SOFTCAP_FLOPS_PER_SCORE if spec is not None and spec.softcap else 0) \
        + (0 if work.mask.is_empty else MASK_FLOPS_PER_SCORE)
    vec = 0.0 if work.flops_override is not None else pairs * work.qk_fraction * per_score
    vec += work.batch * work.q_heads * work.q_len * work.v_dim  # final 1/l rescale of the output
    q_block = tiling.q_block or 1
    kv_block = tiling.kv_block or 16
    tokens, nblk = _kv_tokens_read(work, q_block)
    token_bytes = work.kv_token_bytes if work.kv_token_bytes is not None else (work.qk_dim + work.v_dim) * b
    if work.pairs_per_head is not None and work.kv_read_scale == 1.0:
        tokens = min(tokens, nblk * work.kv_len)
    kv_read = work.batch * work.kv_heads * tokens * token_bytes * work.kv_read_scale
    q_bytes = work.batch * work.q_heads * work.q_len * work.qk_dim * b
    o_bytes = work.batch * work.q_heads * work.q_len * (work.out_dim or work.v_dim) * b
    once, _ = _kv_tokens_read(work, max(1, work.q_len * work.group))  # union of visible keys, each read once
    kv_once = work.batch * work.kv_heads * once * token_bytes * work.kv_read_scale
    # the re-reads by later query blocks come from main memory only when one kv head's keys and values do not
    # stay in the largest on-chip level (as for a matmul's reused operand); kv_read_bytes keeps the FA-IO count
    reuse = max(hw.on_chip_levels, key=lambda lv: lv.capacity_bytes * (lv.units if lv.per_unit else 1))
    kv_stays = once * token_bytes * work.kv_read_scale <= reuse.capacity_bytes and kv_read > kv_once
    main = q_bytes + o_bytes + (min(kv_once, kv_read) if kv_stays else kv_read) + work.extra_bytes
    n_tiles = work.batch * work.kv_heads * nblk * max(1, math.ceil(tokens / nblk / kv_block))
    footprint = _footprint(work, q_block, kv_block)
    fits = footprint <= hw.on_chip_bytes
    cost = OpCost(flops=core + work.extra_flops, vector_flops=vec + work.extra_vector_flops, main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = main
    if kv_stays and reuse.name != hw.tile_level:
        cost.bytes[reuse.name] = kv_read - kv_once
    # traffic through the tiled level: each query block's Q in and O out once, a K and V tile per step
    # (the score tile stays in registers / L1 and the Q block stays resident across the kv loop)
    width = work.qk_dim + work.v_dim
    tile_bytes = (work.batch * work.kv_heads * nblk * q_block * width + n_tiles * kv_block * width) * work.elem_bytes
    if fits:
        cost.bytes[hw.tile_level] = tile_bytes
    else:  # the tile spills: its traffic lands on the next level out
        idx = [lv.name for lv in hw.levels].index(hw.tile_level)
        spill = hw.levels[idx + 1].name
        cost.bytes[spill] = cost.bytes.get(spill, 0.0) + tile_bytes
        cost.notes.append(f"tile {q_block}x{kv_block} needs {footprint} B > {hw.tile_level} {hw.on_chip_bytes} B: spills to {spill}")
    cache_tok = work.cache_bytes_per_token if work.cache_bytes_per_token is not None else \
        work.kv_heads * (work.qk_dim + work.v_dim) * b
    cost.kv_bytes_per_token = cache_tok
    cost.kv_cache_bytes = cache_tok * (work.cache_len if work.cache_len is not None else work.kv_len) * work.batch
    cost.kv_read_bytes = kv_read
    cost.details["kv_unique_bytes"] = work.batch * work.kv_heads * once * token_bytes * work.kv_read_scale
    run = executed_tiles(work, Tiling(q_block=q_block, kv_block=kv_block, num_splits=tiling.num_splits))
    # waste of whole tiles over the ideal pairs (variants that override pairs keep their own count)
    ideal = visible_pairs(work.mask, work.q_len, work.kv_len)
    waste = run.pairs_per_head / ideal if work.pairs_per_head is None and work.flops_override is None and ideal else 1.0
    cost.executed_flops = core * waste + work.extra_flops
    cost.executed_vector_flops = vec + (waste - 1.0) * (pairs * work.qk_fraction * per_score) + work.extra_vector_flops
    if work.pairs_per_head is None and work.flops_override is None and not work.mask.is_empty:
        # the mask is paid only on blocks it cuts through, at the kernel's per-score masking cost
        heads = work.batch * work.q_heads
        cost.executed_vector_flops += (MASK_PASS_FLOPS_PER_SCORE * run.masked_pairs_per_head * heads
                                       - MASK_FLOPS_PER_SCORE * run.pairs_per_head * heads * work.qk_fraction)
    cost.parallel_tasks = run.tasks
    if run.decode and run.num_splits > 1:  # each split writes a partial output + log-sum-exp; a merge reads them
        rows = work.batch * work.kv_heads * work.group * work.q_len
        cost.bytes[hw.main_memory.name] += 2.0 * rows * run.num_splits * (work.v_dim + 1) * 4
        cost.executed_vector_flops += 3.0 * rows * run.num_splits * work.v_dim
    cost.details.update(kernel="attention.decode" if run.decode else "attention.prefill", executed_pairs_per_head=run.pairs_per_head,
                        tile_waste=waste, parallel_tasks=run.tasks, num_splits=run.num_splits,
                        masked_pairs_per_head=run.masked_pairs_per_head)
    cost.notes.extend(work.notes)
    cost.details.update(core_flops=core, pairs=pairs, q_blocks=nblk, kv_tokens_read_per_head=tokens,
                        tiling={"q_block": q_block, "kv_block": kv_block}, tile_footprint_bytes=footprint,
                        tile_fits=fits, q_bytes=q_bytes, o_bytes=o_bytes, extra_bytes=work.extra_bytes,
                        effective={"kv_heads": work.kv_heads, "qk_dim": work.qk_dim, "v_dim": work.v_dim,
                                   "q_len": work.q_len, "kv_len": work.kv_len})
    return cost


def attention_cost(spec: AttentionSpec, batch: int, q_len: int, kv_len: int, dtype: str,
                   tiling: Tiling | None, hardware: HardwareSpec | str) -> OpCost:
    """Counted and priced cost of one Attention op.

    `q_len` queries attend `kv_len` keys (decode: q_len=1, kv_len = past + 1); `tiling` None picks
    the tiles that minimize main-memory bytes and fit `hardware.on_chip_bytes`.
    """
    hw = get_hardware(hardware)
    work = apply_feature_rules(plain_work(spec, batch, q_len, kv_len, dtype), spec)
    chosen = tiling if tiling is not None and tiling.q_block and tiling.kv_block else default_tiling(work, hw)
    cost = count_work(work, chosen, hw, spec)
    if tiling is None or not (tiling.q_block and tiling.kv_block):
        cost.details["tiling_source"] = "cost model default (min main-memory bytes that fit)"
    cost.details["variant"] = spec.variant
    return price(cost, hw, dtype, cost.details["kernel"])
