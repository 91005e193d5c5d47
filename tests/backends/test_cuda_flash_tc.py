"""Tensor-core flash prefill (backends/cuda/attention/flash_tc.py) without a GPU:
- the generated CUDA has mma.sync m16n8k16 and ldmatrix (x4, x4.trans) and nvcc compiles it for sm_80 / sm_90a
  without register spills (fp16, bf16);
- the same kernel runs as OpenCL on PoCL (fp32 stand-in: PoCL has no fp16) against torch SDPA, with each
  ldmatrix / mma.sync either emulated by its PTX-ISA semantics through shared scratch using the very lane
  addresses and fragment offsets of the CUDA build (tensorize="emulate": checks the fragment layouts too) or
  replaced by scalar dot products (tensorize=False): tiling, GQA packing, causal block skipping, the online
  softmax on fragments and the P tile;
- the cuda plugin picks it for fp16/bf16 with head dims % 16 == 0 and otherwise keeps the CUDA-core kernel
  with the reason in the kernel metadata.
Verified only on a GPU (benchmarks/gpu_check.py): the hardware instructions themselves, fp16/bf16 rounding, speed."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import torch

from attncc.backends.core.attention_config import AttentionKernelConfig

from cuda_pocl import pocl_device, pocl_problem

NVCC = pytest.mark.skipif(not (shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc")),
                          reason="nvcc (CUDA toolkit) not installed")
POCL = pytest.mark.skipif(pocl_problem() is not None, reason=str(pocl_problem()))


def _cfg(**kw) -> AttentionKernelConfig:
    base = dict(batch=2, q_heads=8, kv_heads=2, q_len=40, kv_len=56, head_dim=32, v_head_dim=32, scale=0.2,
                dtype="float32")
    base.update(kw)
    return AttentionKernelConfig(**base)


def run_tc_on_pocl(cfg, bq: int, bk: int, q, k, v, mask=None, mode: bool | str = "emulate") -> np.ndarray:
    """out of flash_tc_primfunc(cfg, bq, bk, tensorize=mode) as OpenCL on PoCL for numpy inputs."""
    import pyopencl as cl
    import tvm

    from attncc.backends.cuda.attention.flash_tc import flash_tc_primfunc

    func = flash_tc_primfunc(cfg, bq, bk, tensorize=mode, smem="shared")
    ex = tvm.compile(tvm.IRModule({"main": func}), target=tvm.target.Target({"kind": "opencl"}))
    src = ex.mod.imports[0].inspect_source()
    ctx = cl.Context(devices=[pocl_device()])
    queue = cl.CommandQueue(ctx)
    prog = cl.Program(ctx, src).build()
    b, hq, ql, _ = q.shape
    hkv, kl, dv = k.shape[1], k.shape[2], v.shape[3]
    out = np.zeros((b, hq, ql, dv), np.float32)
    arrays = {"Q": q, "K": k, "V": v, "O": out}
    if mask is not None:
        arrays["M"] = mask
    bufs = {n: cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=np.ascontiguousarray(a))
            for n, a in arrays.items()}
    scalars = {"batch": b, "q_len": ql, "kv_len": kl, "mb": mask.shape[0] if mask is not None else 1,
               "mh": mask.shape[1] if mask is not None else 1}
    (name, params), = re.findall(r"__kernel void (\w+)\(([^)]*)\)\s*{", src)
    args = [bufs[p.split()[-1][:-4]] if p.split()[-1].endswith("_ptr") else np.int32(scalars[p.split()[-1]])
            for p in params.split(",")]
    nqb = -(-(ql * cfg.group) // bq)
    getattr(prog, name)(queue, (nqb * 2 * bq, b * hkv), (2 * bq, 1), *args)   # 32 lanes x bq / 16 warps
    cl.enqueue_copy(queue, out, bufs["O"])
    queue.finish()
    return out


def _sdpa(cfg, q, k, v, mask=None) -> np.ndarray:
    """torch SDPA (float64, GQA by repeating K/V heads): the oracle."""
    g = cfg.q_heads // cfg.kv_heads
    qt, kt, vt = (torch.tensor(a, dtype=torch.float64) for a in (q, k, v))
    kt, vt = kt.repeat_interleave(g, 1), vt.repeat_interleave(g, 1)
    ql, kl = q.shape[2], k.shape[2]
    keep = torch.ones(ql, kl, dtype=torch.bool)
    if cfg.causal:   # bottom-right aligned (the config's default alignment)
        keep &= torch.arange(kl)[None] <= torch.arange(ql)[:, None] + (kl - ql)
    if cfg.window_left is not None:
        keep &= torch.arange(kl)[None] >= torch.arange(ql)[:, None] + (kl - ql) - cfg.window_left
    attn = keep if mask is None else keep & torch.tensor(mask != 0)
    return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt, attn_mask=attn, scale=cfg.scale).numpy()


def _check(cfg, bq=32, bk=32, seed=0, mask_shape=None, mode="emulate"):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((cfg.batch, cfg.q_heads, cfg.q_len, cfg.head_dim)).astype(np.float32)
    k = rng.standard_normal((cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.head_dim)).astype(np.float32)
    v = rng.standard_normal((cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.v_head_dim)).astype(np.float32)
    mask = None
    if cfg.mask_input == "bool":
        mask = (rng.random(mask_shape) > 0.3).astype(np.uint8)
    elif cfg.mask_input == "additive":
        mask = rng.standard_normal((1, cfg.q_heads, cfg.q_len, cfg.kv_len)).astype(np.float32)
    got = run_tc_on_pocl(cfg, bq, bk, q, k, v, mask, mode)
    if cfg.softcap or cfg.mask_input == "additive" or cfg.alignment != "bottom_right":
        from test_cuda_flash_pocl import torch_reference   # torch math with softcap / bias / top-left alignment

        want = torch_reference(cfg, q, k, v, mask)
    else:
        want = _sdpa(cfg, q, k, v, mask)
    np.testing.assert_allclose(got, want, atol=2e-5, rtol=1e-4)


@POCL
def test_gqa_causal_matches_sdpa_on_pocl():
    """Packed GQA rows (G=4) over 5 row blocks of 2 warps, causal skipping with kv_len > q_len, partial key tile;
    ldmatrix / mma emulated from the PTX ISA with the CUDA build's lane addresses and fragment offsets."""
    _check(_cfg(causal=True))


@POCL
@pytest.mark.slow
def test_gqa_causal_scalar_loop_nest_matches_sdpa_on_pocl():
    _check(_cfg(causal=True), mode=False)


@POCL
@pytest.mark.slow
@pytest.mark.parametrize("kw,tile", [
    (dict(), (64, 16)),                                                    # no mask, 4 warps, 16-key steps
    (dict(q_heads=4, kv_heads=4, causal=True, q_len=33, kv_len=33, head_dim=48, v_head_dim=16), (16, 64)),
    (dict(causal=True, window_left=9, kv_len=80), (32, 16)),               # sliding window block skipping
    (dict(mask_input="bool", q_heads=2, kv_heads=1), (32, 32)),            # boolean mask, MQA
    (dict(causal=True, dynamic=("batch", "q_len", "kv_len")), (32, 32)),   # shape-generic
    (dict(mask_input="additive", softcap=2.0), (32, 16)),                  # additive bias + softcap
    (dict(causal=True, alignment="top_left", q_len=56, kv_len=40), (64, 32)),  # top-left: late rows see all keys
])
@pytest.mark.parametrize("mode", ["emulate", False])
def test_variants_match_sdpa_on_pocl(kw, tile, mode):
    cfg = _cfg(**kw)
    _check(cfg, *tile, seed=1, mask_shape=(cfg.batch, 1, cfg.q_len, cfg.kv_len) if cfg.mask_input == "bool" else None,
           mode=mode)


@NVCC
@pytest.mark.parametrize("arch,dtype,dynamic", [("sm_80", "float16", ()),
                                                pytest.param("sm_90a", "bfloat16", ("batch", "q_len", "kv_len"),
                                                             marks=pytest.mark.slow)])
def test_generated_cuda_has_mma_and_ldmatrix_and_nvcc_compiles_it(arch, dtype, dynamic, tmp_path):
    import subprocess

    import tvm

    from attncc.backends.cuda.attention import attention_primfunc
    from attncc.backends.cuda.nvcc import find_nvcc
    from attncc.backends.cuda.target import cuda_target
    from attncc.backends.cuda.tensor_core import cuda_build_config

    cfg = _cfg(q_heads=32, kv_heads=8, q_len=512, kv_len=512, head_dim=128, v_head_dim=128, scale=128 ** -0.5,
               dtype=dtype, causal=True, dynamic=dynamic)
    target = cuda_target({"arch": arch})
    func, meta = attention_primfunc(cfg, target)
    assert meta["kind"] == "flash-prefill-tc" and meta["schedule"]["tensor_cores"] is True
    with tvm.transform.PassContext(opt_level=3, config=cuda_build_config()):
        ex = tvm.compile(tvm.IRModule({"main": func}), target=tvm.target.Target(target))
    src = ex.mod.imports[0].inspect_source()
    ab = {"float16": "f16", "bfloat16": "bf16"}[dtype]
    assert f"mma.sync.aligned.m16n8k16.row.col.f32.{ab}.{ab}.f32" in src
    assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in src and "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in src
    assert "__shfl_xor_sync" in src and "uint4" in src      # quad reductions in registers, 16-byte tile loads
    (tmp_path / "k.cu").write_text(src)
    proc = subprocess.run([find_nvcc(), "--cubin", "-O3", f"-arch={arch}", "-Xptxas", "-v", "-o",
                           str(tmp_path / "k.cubin"), str(tmp_path / "k.cu")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " 0 bytes spill stores" in proc.stderr, proc.stderr   # fragments stay in registers


@pytest.mark.parametrize("kw,why", [
    (dict(dtype="float32"), "dtype float32"),
    (dict(dtype="float16", head_dim=40, v_head_dim=40), "head dims 40/40 are not multiples of 16"),
    (dict(dtype="float16", q_len=1, kv_len=8192, num_splits=8), "split-KV decode"),
])
def test_other_cases_keep_the_cuda_core_kernel_with_the_reason(kw, why):
    from attncc.backends.cuda.attention import attention_primfunc

    func, meta = attention_primfunc(_cfg(**kw), {"arch": "sm_90a"})
    assert meta["kind"] in ("flash-prefill", "flash-decode")
    assert why in meta["schedule"]["tensor_cores"]
