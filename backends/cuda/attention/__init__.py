"""Flash attention kernels for the cuda target (TIR PrimFuncs): prefill and split-KV decode + combine (flash.py),
absorbed MLA reading V from the K tile (mla.py), tiles checked against the arch's limits before codegen
(resources.py); fp16/bf16 prefill with head dims % 16 == 0 on tensor cores (flash_tc.py)."""
from __future__ import annotations

from ..arch import cuda_arch
from .resources import FlashTile, TileError, config_tile, registers_per_thread, shared_bytes


def kernel_tile(cfg, arch: str, forced: tuple | None = None) -> tuple[FlashTile, int]:
    """(tile, KV splits) of the kernel for `cfg` on `arch`; `forced` = (q_block, kv_block) from the compile
    options (a forced tile over a limit raises TileError)."""
    tile = config_tile(cfg, cuda_arch(arch), forced)
    splits = max(1, min(cfg.num_splits or 1, -(-cfg.kv_len // tile.kv_block)))
    return tile, splits


def attention_primfunc(cfg, target: dict, forced: tuple | None = None):
    """(PrimFunc over (q, k, v[, mask], out), metadata) for `cfg` on `target`; attention the decomposition tagged
    "v-from-k" (absorbed MLA, `cfg.v_from_k`) gets the kernel reading V from the K tile."""
    from .flash import flash_primfunc
    from .flash_tc import flash_tc_primfunc, tc_schedule, tc_tile_or_reason
    from .mla import is_mla_absorbed, mla_primfunc

    if is_mla_absorbed(cfg):
        return mla_primfunc(cfg, target, forced)
    tile, splits = kernel_tile(cfg, target["arch"], forced)
    tc = tc_tile_or_reason(cfg, tile, splits, cuda_arch(target["arch"]))
    if not isinstance(tc, str):   # mma.sync kernel; otherwise the CUDA-core kernel, the reason in its metadata
        return flash_tc_primfunc(cfg, *tc), {"kind": "flash-prefill-tc", "schedule": tc_schedule(cfg, tc, target)}
    func = flash_primfunc(cfg, tile, splits)
    return func, {"kind": "flash-decode" if splits > 1 else "flash-prefill",
                  "schedule": {"q_block": tile.q_block, "kv_block": tile.kv_block, "threads_per_row": tile.tpr,
                               "threads": tile.threads, "splits": splits, "arch": target["arch"],
                               "shared_bytes": shared_bytes(tile, cfg.head_dim, cfg.v_head_dim, cfg.dtype),
                               "registers_estimate": registers_per_thread(tile, cfg.v_head_dim),
                               "tensor_cores": f"not used: {tc}"}}


__all__ = ["FlashTile", "TileError", "attention_primfunc", "kernel_tile"]
