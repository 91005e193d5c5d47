"""Every pipeline attncc runs, as text, in one place (the target-aware passes they name are registered by
`attncc.passes`; `attncc.pipelines` checks that each named pass exists).

- LIFT: what the frontends run right after import (torch.export and ONNX alike);
- REFERENCE: the `reference` target's default (no target-aware passes);
- target_pipeline(target, parallel_units): a code-generating target's default, built from its Target
  record (backends/<target>/record.py) so the tile pass receives that record;
- DECOMPOSE: what the backend core runs before lowering (variant features -> plain Attention + IR ops).
"""
from __future__ import annotations

LIFT = "canonicalize,constant-fold,lift-attention,canonicalize,dce"

REFERENCE = "canonicalize,constant-fold,fold-batch-norm,lift-attention,canonicalize-attention,fold-repeat-kv,dce"

# Order matters: clean up, fold inference BatchNorm into its conv/linear, lift spelled-out attention (and DeepSeek's latent K/V into MLA while RoPE is still
# spelled out), peel what SDPA-made ops read off their key
# (repeat_kv, then the KV-cache concat, so the new key is exposed), turn spelled-out RoPE into Rotary
# ops, fold layout/repeat_kv/RoPE into the op (fold-repeat-kv again for repeats a layout flip exposes, and
# once more for repeats under the RoPE that fuse-attention folds: Falcon rotates the already-broadcast K),
# pack projections, lift spelled-out RMSNorms into one row kernel each (an HF Llama layer h512/s256 on cpu: 15 -> 11
# kernels, 10.9 -> 9.9 ms, same run, load 1.2, 2026-12-07), then the target-aware passes (attncc/passes): MLA order,
# decode split-KV plan, tiles.
FUSE = ("canonicalize,constant-fold,fold-batch-norm,lift-attention,lift-mla,fold-repeat-kv,fold-kv-cache,lift-rotary,"
        "canonicalize-attention,fold-repeat-kv,fuse-attention,fold-repeat-kv,fuse-qkv,lift-rms-norm,cse,canonicalize,dce")

# variant features -> plain Attention + IR ops, then clean up what the rewrites leave behind (constant-fold
# pre-lays out weights the rewrites transpose, e.g. MLA's per-head W_uk / W_uv, once at compile time)
DECOMPOSE = "decompose-variants,constant-fold,canonicalize,dce"


def target_pipeline(target: str, parallel_units: int, tile: str = "") -> str:
    """FUSE, then the target-aware passes for `target` (a registered target spec such as "cuda" or
    "cuda:arch=sm_80", or a catalog device name) with `parallel_units` cores / SMs for the decode split plan;
    `tile` adds options to the tile pass (e.g. "q_block=32,kv_block=32": a tile the user forced)."""
    return (f"{FUSE},mla-absorb{{target={target}}},decode-split-kv{{parallel_units={parallel_units}}},"
            f"tile{{target={target}{',' + tile if tile else ''}}}")
