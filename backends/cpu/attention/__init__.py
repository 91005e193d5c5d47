"""CPU attention kernel library: hand-scheduled TVM TIR flash-attention kernels.

    from attncc.backends.cpu.attention import AttentionKernelConfig, build_attention_kernel
    kern = build_attention_kernel(AttentionKernelConfig(batch=1, q_heads=8, kv_heads=8,
                                  q_len=1024, kv_len=1024, head_dim=64, v_head_dim=64,
                                  scale=0.125, causal=True))
    out = kern(q, k, v)            # numpy or torch, (B, H, N, D) layout

Prefill (q_len > 8): online-softmax flash kernel, query/key blocking, register-tiled
GEMMs, causal/window blocks skipped.  Decode (q_len <= 8): split-KV with log-sum-exp
merge, all query heads of a kv group together.  Variants are score/mask mods
(score_mods.py).  Rows with every key masked produce 0.
"""
from ...core.attention_config import AttentionKernelConfig
from .build import AttentionKernel, build_attention_kernel, clear_cache, load_attention_kernel, select_kind
from .score_mods import MASK_MODS, SCORE_MODS, MaskMod, ScoreMod, ModContext
from .target import default_target

__all__ = ["AttentionKernelConfig", "AttentionKernel", "build_attention_kernel", "clear_cache",
           "load_attention_kernel", "select_kind", "MASK_MODS", "SCORE_MODS", "MaskMod", "ScoreMod", "ModContext",
           "default_target"]
