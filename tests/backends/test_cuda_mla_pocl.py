"""Absorbed MLA decode on the cuda target: the flash TIR with V read from the K tile (attention/mla.py), executed
as OpenCL on PoCL (cuda_pocl.py) against torch SDPA over the latent (absorbed MLA = MQA with K = [c_kv | k_pe],
V = c_kv), and against the naive order (per-head K/V up-projected from the latent with torch); the kernel choice
for MLA graphs. fp32 on PoCL; DeepSeek-V3 dims (128 heads, 512 + 64) are compiled by nvcc in test_cuda_sweep.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from attncc.backends.core.attention_config import AttentionKernelConfig

from cuda_pocl import pocl_problem, run_flash

POCL = pytest.mark.skipif(pocl_problem() is not None, reason=str(pocl_problem()))


def _mla_inputs(seed, B, H, L, r, nope, Sq, S):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Sq, nope + r, generator=g)
    cache = torch.randn(B, 1, S, L + r, generator=g)       # [c_kv | rotated k_pe]
    w_uk = 0.3 * torch.randn(L, H, nope, generator=g)
    return q, cache, w_uk


@POCL
@pytest.mark.parametrize("splits,Sq,S,causal", [(3, 1, 100, False), (1, 2, 37, True)])
def test_mla_absorbed_vs_torch(splits, Sq, S, causal):
    """Decode (split-KV + combine) and a 2-row causal step: 16 heads packed into one block, V from the K tile."""
    from attncc.backends.cuda.attention.resources import FlashTile, threads_per_row

    B, H, L, r, nope = 2, 16, 32, 8, 16
    q, cache, w_uk = _mla_inputs(splits, B, H, L, r, nope, Sq, S)
    scale = (nope + r) ** -0.5
    # absorbed query: q_nope W_uk^T per head (torch einsum), rope part as is
    q_abs = torch.cat([torch.einsum("bhsn,lhn->bhsl", q[..., :nope], w_uk), q[..., nope:]], -1)
    cfg = AttentionKernelConfig(batch=B, q_heads=H, kv_heads=1, q_len=Sq, kv_len=S, head_dim=L + r, v_head_dim=L,
                                scale=scale, causal=causal, dtype="float32")
    tile = FlashTile(16, 16, threads_per_row(L))
    garbage_v = np.full((B, 1, S, L), np.nan, np.float32)   # never read: a read would poison the output
    got = run_flash(cfg, tile, splits, q_abs.numpy(), cache.numpy(), garbage_v, v_from_k=True)
    # oracle 1: torch SDPA over the latent (MQA, V = c_kv)
    want = torch.nn.functional.scaled_dot_product_attention(
        q_abs, cache.expand(B, H, S, L + r), cache[..., :L].expand(B, H, S, L), scale=scale,
        attn_mask=torch.ones(Sq, S, dtype=torch.bool).tril(S - Sq) if causal else None)
    np.testing.assert_allclose(got, want.numpy(), atol=2e-5, rtol=1e-4)
    # oracle 2: the naive order, per-head K = [c W_uk_h | k_pe], V = c, summed over the latent by torch
    k_naive = torch.cat([torch.einsum("bsl,lhn->bhsn", cache[:, 0, :, :L], w_uk),
                         cache[..., L:].expand(B, H, S, r)], -1)
    naive = torch.nn.functional.scaled_dot_product_attention(
        q, k_naive, cache[..., :L].expand(B, H, S, L), scale=scale,
        attn_mask=torch.ones(Sq, S, dtype=torch.bool).tril(S - Sq) if causal else None)
    np.testing.assert_allclose(got, naive.numpy(), atol=5e-5, rtol=1e-4)


def test_mla_kernel_chosen_only_for_absorbed_mla():
    """The absorbed MLA op's decomposed attention gets the V-from-K kernel; naive MLA and a plain MQA op with the
    same dims do not; DeepSeek-V3 decode dims fit sm_80 with a split-KV plan and use less shared memory."""
    from attncc.backends.cuda.attention import attention_primfunc
    from attncc.backends.cuda.attention.mla import is_mla_absorbed, mla_tile
    from attncc.backends.core.program import decompose_variants
    from attncc.backends.cuda.attention.resources import shared_bytes
    from attncc.ir import Graph
    from attncc.ir.ops import Attention, AttentionSpec
    from attncc.ir.ops.attention_features import MLA

    def graph(absorbed, extra_mqa):
        g = Graph("mla")
        spec = AttentionSpec(128, 1, 192, v_head_dim=128, kv_source=MLA(512, 64, absorbed))
        ins = [g.add_input("q", "float16", (4, 128, 1, 192)), g.add_input("c", "float16", (4, 1, 4096, 576)),
               g.add_input("v", "float16", (4, 1, 4096, 512)), g.add_input("wk", "float16", (512, 128, 128)),
               g.add_input("wv", "float16", (512, 128, 128))]
        outs = list(g.add(Attention(spec=spec), ins, name="mla"))
        if extra_mqa:
            q2 = g.add_input("q2", "float16", (4, 128, 1, 576))
            outs += list(g.add(Attention(spec=AttentionSpec(128, 1, 576, v_head_dim=512)), [q2, ins[1], ins[2]],
                               name="mqa"))
        g.set_outputs(outs)
        return g

    def hinted(g):   # the attention ops the decomposition tagged "v-from-k", by (heads, D, Dv)
        g = decompose_variants(g)
        hints = g.metadata.get("kernel_hints", {})
        return {(n.op.spec.num_heads, n.op.spec.head_dim, n.op.spec.v_head_dim) for n in g.nodes
                if n.op.op_name == "Attention" and hints.get(n.name) == "v-from-k"}

    assert hinted(graph(True, False)) == {(128, 576, 512)} == hinted(graph(True, True))   # the plain MQA: no tag
    assert hinted(graph(False, False)) == set()
    assert len(decompose_variants(graph(True, True)).metadata["kernel_hints"]) == 1
    cfg = AttentionKernelConfig(batch=64, q_heads=128, kv_heads=1, q_len=1, kv_len=4096, head_dim=576,
                                v_head_dim=512, scale=192 ** -0.5, dtype="float16", num_splits=3, v_from_k=True)
    assert is_mla_absorbed(cfg) and not is_mla_absorbed(dataclasses.replace(cfg, v_from_k=False))
    tile, splits = mla_tile(cfg, "sm_80")
    assert splits == 3 and tile.q_block <= 128
    assert shared_bytes(tile, 576, 512, "float16", True) < shared_bytes(tile, 576, 512, "float16")
    _, meta = attention_primfunc(cfg, {"arch": "sm_90a"})
    assert meta["kind"] == "mla-absorbed-decode" and meta["schedule"]["v_from_k"]
    _, meta = attention_primfunc(dataclasses.replace(cfg, v_from_k=False), {"arch": "sm_90a"})
    assert meta["kind"] == "flash-decode"


def _deepseek_decode_graph(batch=4, kv_len=1024):
    """One absorbed-MLA decode step with DeepSeek-V3 dims: 128 heads, nope 128 + rope 64, latent 512, Dv 128."""
    from attncc.ir import Graph
    from attncc.ir.ops import Attention, AttentionSpec
    from attncc.ir.ops.attention_features import MLA

    g = Graph("deepseek_v3_mla_decode")
    spec = AttentionSpec(128, 1, 192, v_head_dim=128, kv_source=MLA(512, 64, True))
    ins = [g.add_input("q", "float16", (batch, 128, 1, 192)), g.add_input("cache", "float16", (batch, 1, kv_len, 576)),
           g.add_input("c_kv", "float16", (batch, 1, kv_len, 512)), g.add_input("w_uk", "float16", (512, 128, 128)),
           g.add_input("w_uv", "float16", (512, 128, 128))]
    g.set_outputs(list(g.add(Attention(spec=spec), ins, name="mla")))
    return g


@pytest.mark.slow
@pytest.mark.skipif(not __import__("shutil").which("nvcc") and not __import__("os").path.exists("/usr/local/cuda/bin/nvcc"),
                    reason="nvcc (CUDA toolkit) not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90a"])
def test_deepseek_v3_decode_compiles_with_the_mla_kernel(tmp_path, arch):
    """attncc.compile on the cuda target: mla-absorb keeps decode absorbed, the kernel reads V from the K tile with
    a split-KV plan, TVM generates CUDA and nvcc compiles it for `arch` (numerics: PoCL above, GPU: gpu_check.py)."""
    import attncc

    cm = attncc.compile(_deepseek_decode_graph(), target="cuda", options={"arch": arch, "cache": False})
    steps = [s for r in cm.executable.artifacts["program"].runners.values() for s in r.plan.steps
             if s["kind"] == "attention"]
    assert len(steps) == 1 and steps[0]["kernel"]["kind"] == "mla-absorbed-decode", steps
    sched = steps[0]["kernel"]["schedule"]
    assert sched["v_from_k"] and sched["splits"] > 1 and sched["arch"] == arch
    cm.export(str(tmp_path))
    assert list((tmp_path / "cuda").glob("kernels_*.fatbin"))
