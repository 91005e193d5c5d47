"""Tensor-core matmuls on the cuda target without a GPU: mma.sync/ldmatrix in the generated CUDA, nvcc for sm_80
and sm_90a (fp16, bf16), tiles checked against the arch's limits, the dlight fallback and its note, and the
schedule's loop nest (tiling, shared staging, pipelining, epilogue) run as OpenCL on PoCL against numpy.

Verified only on a GPU (benchmarks/gpu/gemm.py): the ldmatrix/mma fragment layouts (TVM's intrinsics and the
bf16 copies in tensor_core/intrin.py) and speed."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

from attncc import ir
from attncc.backends.cuda.arch import cuda_arch
from attncc.backends.cuda.tensor_core.tiles import TcTile, TcTileError, check_tile, choose_tile, shared_bytes
from cuda_pocl import pocl_problem

NVCC = pytest.mark.skipif(not (shutil.which("nvcc") or os.path.exists("/usr/local/cuda/bin/nvcc")),
                          reason="nvcc (CUDA toolkit) not installed")


def test_tiles_fit_the_arch_and_over_limit_tiles_name_the_limit():
    a80, a90 = cuda_arch("sm_80"), cuda_arch("sm_90a")
    t = choose_tile(8192, 8192, 8192, "float16", a80)
    assert (t.block_m, t.block_n, t.warp_m, t.warp_n) == (128, 128, 64, 64)
    assert shared_bytes(t, "float16") <= a80.max_shared_per_block
    assert choose_tile(48, 80, 32, "bfloat16", a90).block_m == 16          # only 16 divides M=48 and N=80
    with pytest.raises(TcTileError, match=r"shared memory \d+ B per block > 166912 B allowed on sm_80"):
        check_tile(TcTile(256, 256, 64, 2, 2, 3), "float16", a80)
    with pytest.raises(TcTileError, match=r"registers per thread > 255 on sm_90a"):
        check_tile(TcTile(256, 128, 32, 1, 1), "float16", a90)
    with pytest.raises(TcTileError, match="1280 threads per block > 1024"):
        check_tile(TcTile(320, 64, 32, 10, 4), "float16", a90)


@NVCC
@pytest.mark.parametrize("arch,dtype", [("sm_80", "float16"), pytest.param("sm_90a", "bfloat16", marks=pytest.mark.slow)])
def test_generated_cuda_has_mma_and_ldmatrix_and_nvcc_compiles_it(arch, dtype, tmp_path):
    from attncc.backends.cuda.nvcc import compile_fatbin, fatbin_entries
    from attncc.backends.cuda.tensor_core import build_tc_gemm

    ex, tile = build_tc_gemm(256, 256, 128, dtype, arch, bias=True)
    src = ex.mod.imports[0].inspect_source()
    ab = {"float16": "f16", "bfloat16": "bf16"}[dtype]
    assert f"mma.sync.aligned.m16n8k16.row.col.f32.{ab}.{ab}.f32" in src
    assert "ldmatrix.sync.aligned.m8n8.x4.shared.b16" in src and "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16" in src
    assert "extern __shared__" in src        # dynamic shared memory (the tile may exceed the 48 KB static limit)
    assert "cp.async.cg.shared.global" in src and "cp.async.wait_group" in src   # pipelined async copies
    fatbin = compile_fatbin(src, arch, str(tmp_path))
    assert {"kind": "elf", "arch": int(arch[3:5])} in [{k: e[k] for k in ("kind", "arch")} for e in fatbin_entries(fatbin)]


def _mlp(k_in: int, dtype: str) -> ir.Graph:
    from attncc.ir.ops import Activation, Binary, Linear

    rng = np.random.default_rng(0)
    npd = ir.types.numpy_dtype(dtype)
    g = ir.Graph("tc_mlp")
    x = g.add_input("x", dtype, (2, 64, k_in))
    w1 = g.add_constant((rng.standard_normal((k_in, 128)) * 0.1).astype(npd), "w1")
    b1 = g.add_constant(rng.standard_normal(128).astype(npd), "b1")
    w2 = g.add_constant((rng.standard_normal((128, k_in)) * 0.1).astype(npd), "w2")
    h = g.add1(Activation("gelu"), [g.add1(Linear(has_bias=True), [x, w1, b1], name="fc1")], name="act")
    g.set_outputs([g.add1(Binary("add"), [g.add1(Linear(), [h, w2], name="fc2"), x], name="residual")])
    return g


@NVCC
def test_core_matmuls_take_tensor_cores_or_fall_back_with_a_note(tmp_path, monkeypatch):
    """Through attncc.compile: Linear + bias + gelu and Linear + residual (M=128) get mma.sync when the build runs
    TVM's StorageRewrite (the cuda target's builds do); K=40 (not a multiple of 16) keeps dlight and the notes say why; fp32 keeps dlight silently."""
    import attncc

    cm = attncc.compile(_mlp(64, "float16"), target="cuda", options={"arch": "sm_80", "cache": False})
    assert not [n for n in cm.executable.notes if "tensor cores not used" in n], cm.executable.notes
    cm.export(str(tmp_path / "tc"))
    src = (tmp_path / "tc" / "cuda" / "kernels_0.cu").read_text()
    assert len(re.findall(r"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.f16\.f16\.f32", src)) >= 4   # 2 kernels

    odd = attncc.compile(_mlp(40, "float16"), target="cuda", options={"arch": "sm_80", "cache": False})
    notes = [n for n in odd.executable.notes if "tensor cores not used" in n]
    # the note names the fused group's root node (fc1 + gelu -> 'act', fc2 + residual -> 'residual')
    assert any("node 'act'" in n and "K=40 is not a multiple of 16" in n for n in notes), odd.executable.notes
    assert any("node 'residual'" in n and "N=40 is not a multiple of 16" in n for n in notes), odd.executable.notes
    # fp32 keeps dlight as its own schedule: no fallback note, so strict compiles of fp32 models still work
    f32 = attncc.compile(_mlp(64, "float32"), target="cuda", options={"arch": "sm_80", "cache": False}, strict=True)
    assert not [n for n in f32.executable.notes if "generic schedule" in n or "tensor cores" in n], f32.executable.notes


@pytest.mark.slow   # default-suite budget
def test_core_build_without_storage_rewrite_falls_back_with_a_note(monkeypatch):
    import attncc
    from attncc.backends.cuda import tensor_core

    monkeypatch.setitem(tensor_core.CUDA_BUILD_CONFIG, "tirx.disable_storage_rewrite", True)
    cm = attncc.compile(_mlp(64, "float16"), target="cuda", options={"arch": "sm_80", "cache": False})
    assert any("disable_storage_rewrite" in n for n in cm.executable.notes), cm.executable.notes


@pytest.mark.skipif(pocl_problem() is not None, reason=str(pocl_problem()))
@pytest.mark.parametrize("m,n,k,tile", [(128, 64, 96, TcTile(64, 32, 32, 2, 1)), (64, 64, 64, None)])
def test_loop_nest_without_intrinsics_matches_numpy_on_pocl(m, n, k, tile):
    """The schedule with tensorize=False (same tiling, shared staging, 2-stage pipeline, fused bias epilogue;
    fragments in local memory) as OpenCL on PoCL, fp32 (PoCL has no fp16), against numpy."""
    import pyopencl as cl

    from attncc.backends.cuda.tensor_core import build_tc_gemm
    from cuda_pocl import pocl_device

    ex, tile = build_tc_gemm(m, n, k, "float32", "sm_80", tile=tile, bias=True, tensorize=False,
                             target={"kind": "opencl"})
    src = ex.mod.imports[0].inspect_source()
    assert "__local" in src
    ctx = cl.Context(devices=[pocl_device()])
    queue = cl.CommandQueue(ctx)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((1, m, k), np.float32)
    b = rng.standard_normal((k, n), np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    out = np.zeros((1, m, n), np.float32)
    bufs = [cl.Buffer(ctx, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=x) for x in (a, b, bias, out)]
    blocks = (m // tile.block_m) * (n // tile.block_n)
    cl.Program(ctx, src).build().main_kernel(queue, (blocks * 32, tile.warps), (32, tile.warps), *bufs)
    cl.enqueue_copy(queue, out, bufs[3])
    queue.finish()
    np.testing.assert_allclose(out[0], a[0] @ b + bias, rtol=1e-4, atol=1e-4)
