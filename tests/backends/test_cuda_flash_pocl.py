"""The cuda flash-attention TIR executed on this CPU (generated as OpenCL, run on PoCL: see cuda_pocl.py) against
torch SDPA / torch math: GQA packing, causal alignment, windows, masks, softcap, split-KV decode + combine.
fp32 only (PoCL has no fp16); the fp16/bf16 builds differ in storage type and are checked on a GPU by
benchmarks/gpu_check.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attncc.backends.core.attention_config import AttentionKernelConfig

from cuda_pocl import pocl_problem, run_flash

pytestmark = pytest.mark.skipif(pocl_problem() is not None, reason=str(pocl_problem()))


def torch_reference(cfg, q, k, v, mask=None) -> np.ndarray:
    """softmax(mods(scale q k^T)) v with torch ops: keep-mask from causal/window (bottom-right or top-left),
    softcap, additive or boolean mask; fully masked rows -> 0."""
    qt, kt, vt = (torch.tensor(a, dtype=torch.float64) for a in (q, k, v))
    g = cfg.q_heads // cfg.kv_heads
    kt, vt = kt.repeat_interleave(g, 1), vt.repeat_interleave(g, 1)
    s = qt @ kt.transpose(-1, -2) * cfg.scale
    if cfg.softcap:
        s = cfg.softcap * torch.tanh(s / cfg.softcap)
    ql, kl = q.shape[2], k.shape[2]
    pos = torch.arange(ql)[:, None] + (kl - ql if cfg.alignment == "bottom_right" else 0)
    key = torch.arange(kl)[None]
    keep = torch.ones(ql, kl, dtype=torch.bool)
    if cfg.causal:
        keep &= key <= pos
    if cfg.window_left is not None:
        keep &= key >= pos - cfg.window_left
    if cfg.window_right is not None:
        keep &= key <= pos + cfg.window_right
    if mask is not None and cfg.mask_input == "additive":
        s = s + torch.tensor(mask, dtype=torch.float64)
    if mask is not None and cfg.mask_input == "bool":
        keep = keep & torch.tensor(mask != 0)
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s, -1).nan_to_num(0.0)
    return (p @ vt).numpy()


def _case(seed, splits=1, tile=(16, 16), mask_shape=None, **kw):
    from attncc.backends.cuda.attention.resources import FlashTile, threads_per_row

    base = dict(batch=2, q_heads=8, kv_heads=2, q_len=24, kv_len=40, head_dim=16, v_head_dim=16, scale=0.3,
                dtype="float32")
    base.update(kw)
    cfg = AttentionKernelConfig(**base)
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((cfg.batch, cfg.q_heads, cfg.q_len, cfg.head_dim)).astype(np.float32)
    k = rng.standard_normal((cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.head_dim)).astype(np.float32)
    v = rng.standard_normal((cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.v_head_dim)).astype(np.float32)
    mask = None
    if cfg.mask_input != "none":
        shape = mask_shape or (cfg.batch, 1, cfg.q_len, cfg.kv_len)
        mask = ((rng.random(shape) > 0.3).astype(np.uint8) if cfg.mask_input == "bool"
                else rng.standard_normal(shape).astype(np.float32))
    got = run_flash(cfg, FlashTile(tile[0], tile[1], threads_per_row(cfg.v_head_dim)), splits, q, k, v, mask)
    want = torch_reference(cfg, q, k, v, mask)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


def test_gqa_causal_bottom_right():
    """Default-suite case: packed GQA rows over 2 row blocks, causal block skipping with kv_len > q_len."""
    _case(0, causal=True)


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(splits=3, q_len=1, kv_len=77, causal=True),                            # split-KV decode + combine
    dict(splits=4, q_len=3, kv_len=130, mask_input="bool", dynamic=("kv_len",)),  # dynamic kv_len, splits
    dict(causal=True, alignment="top_left", q_len=40, kv_len=24),              # top-left: rows past kv see all
    dict(window_left=5, window_right=3),                                       # sliding window both sides
    dict(causal=True, window_left=7, kv_len=64, tile=(32, 32)),                # causal + left window (skipping)
    dict(mask_input="additive", mask_shape=(1, 8, 24, 40), softcap=2.0),       # per-head additive bias + softcap
    dict(mask_input="bool", mask_shape=(2, 1, 24, 40), q_heads=4, kv_heads=4),  # MHA, batch-broadcast mask
    dict(head_dim=40, v_head_dim=24, tile=(32, 16), q_heads=3, kv_heads=1),     # MQA, odd head dims
    dict(head_dim=72, v_head_dim=160, q_heads=2, kv_heads=2, q_len=5, kv_len=33),  # Dv > 128: 8 threads per row
    dict(dynamic=("batch", "q_len", "kv_len"), causal=True),                    # shape-generic
])
def test_flash_variants(kw):
    _case(1, **kw)
