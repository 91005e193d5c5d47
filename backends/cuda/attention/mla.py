"""Absorbed MLA decode for the cuda target (DeepSeek-V2/V3: 512 latent + 64 rope dims, 128 heads, one latent).

In the absorbed order (ir/ops/attention_features/latent.py) MLA is MQA over the cache entry
[c_kv | k_pe] (D = latent + rope) with V = c_kv = the entry's first `latent` columns. The flash kernel with
`v_from_k` stages each cached row once in shared memory and reads V from that K tile: half the cache bytes
of passing c_kv as a separate V (decode is bound by reading the cache). All heads are one KV group, so the
flash kernel's GQA packing puts the heads' query rows together in a block and a K tile serves all of them;
long caches are split (split-KV partials + combine) like any decode.

The MLA contract makes this exact: both orders of the feature are equal only when value == key[..., :latent]
(the naive order builds K's nope part from `value` and k_pe from `key`), and mla-absorb flips between them.
"""
from __future__ import annotations

from ..arch import cuda_arch
from .resources import FlashTile, config_tile, registers_per_thread, shared_bytes


def is_mla_absorbed(cfg) -> bool:
    """Whether `cfg` is the attention an absorbed MLA op decomposed into: the decomposition tagged it "v-from-k"
    (ir/passes/decompose/latent.py), one KV head whose first v_head_dim columns are V."""
    return cfg.v_from_k and cfg.kv_heads == 1 and cfg.v_head_dim < cfg.head_dim


MIN_CHUNK = 256   # keys per split at least, as decode-split-kv's default


def decode_splits(cfg, arch: str) -> int:
    """KV splits for a decode step whose plan was lost: decompose-variants builds the absorbed attention as a new
    node after decode-split-kv ran on the MLA op, so its tiling carries no num_splits. Enough splits that
    batch x splits covers the SMs, no split under MIN_CHUNK keys, at most 64 (the pass's rule)."""
    if "q_len" in cfg.dynamic or cfg.q_len > 1:
        return 1
    batch = 1 if "batch" in cfg.dynamic else cfg.batch
    from ..record import cuda_record

    sms = cuda_record({"arch": arch}).parallel_units   # the SMs of the arch's device spec (cost_models/specs)
    want = -(-sms // max(1, batch))
    return max(1, min(want, cfg.kv_len // MIN_CHUNK, 64))


def mla_tile(cfg, arch: str, forced: tuple | None = None) -> tuple[FlashTile, int]:
    """(tile, KV splits) for absorbed MLA: the flash tile search with no separate V tile in shared memory."""
    tile = config_tile(cfg, cuda_arch(arch), forced, v_from_k=True)
    splits = max(1, min(cfg.num_splits or decode_splits(cfg, arch), -(-cfg.kv_len // tile.kv_block)))
    return tile, splits


def mla_primfunc(cfg, target: dict, forced: tuple | None = None):
    """(PrimFunc over (q, k, v[, mask], out) that never reads v, metadata) for absorbed MLA `cfg`."""
    from .flash import flash_primfunc

    tile, splits = mla_tile(cfg, target["arch"], forced)
    func = flash_primfunc(cfg, tile, splits, v_from_k=True)
    return func, {"kind": "mla-absorbed" + ("-decode" if splits > 1 else ""),
                  "schedule": {"q_block": tile.q_block, "kv_block": tile.kv_block, "threads_per_row": tile.tpr,
                               "threads": tile.threads, "splits": splits, "arch": target["arch"], "v_from_k": True,
                               "shared_bytes": shared_bytes(tile, cfg.head_dim, cfg.v_head_dim, cfg.dtype, True),
                               "registers_estimate": registers_per_thread(tile, cfg.v_head_dim)}}


__all__ = ["is_mla_absorbed", "mla_primfunc", "mla_tile"]
