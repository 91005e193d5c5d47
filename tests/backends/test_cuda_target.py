"""cuda target without a GPU: TVM-free capabilities, resource checks, codegen + nvcc + export of a small model,
and the no-device error. GPU execution is checked by benchmarks/gpu_check.py on a GPU machine."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import attncc
from attncc.backends import TARGETS, target_capabilities

from cpu_graphs import attention_graph, rng_arrays

NVCC = pytest.mark.skipif(not (os.environ.get("CUDA_HOME") or __import__("shutil").which("nvcc")
                               or os.path.exists("/usr/local/cuda/bin/nvcc")), reason="nvcc (CUDA toolkit) not installed")


def test_capabilities_need_no_tvm():
    code = ("import sys; from attncc.backends import target_capabilities as t; c = t('cuda'); "
            "from attncc.backends.cuda.arch import ARCHES; print(c.on_chip_bytes, 'tvm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["233472", "False"]   # H100 shared memory per SM from cost_models/specs/h100-sxm.json


def test_arch_limits_carry_sources():
    from attncc.backends.cuda.arch import ARCHES, cuda_arch

    assert TARGETS["cuda"].status == "available"
    a80, a90 = cuda_arch("sm_80"), cuda_arch("h100")
    assert (a80.max_shared_per_block, a90.max_shared_per_block) == (163 * 1024, 227 * 1024)
    assert a80.registers_per_sm == a90.registers_per_sm == 65536 and a90.max_registers_per_thread == 255
    assert a90.max_threads_per_block == 1024 and a90.warp_size == 32 and "mma.sync m16n8k16" in a80.tensor_core_shapes
    for arch in ARCHES.values():
        for name in ("max_threads_per_block", "warp_size", "registers_per_sm", "max_registers_per_thread",
                     "max_shared_per_block", "shared_per_sm", "tensor_core_shapes", "tensor_core_dtypes"):
            assert arch.sources[name], f"{arch.arch}.{name} has no source"
    caps = target_capabilities("cuda")
    assert caps.tensor_cores and {"float16", "bfloat16"} <= set(caps.dtypes)
    with pytest.raises(ValueError, match="supported: sm_80, sm_90a"):
        cuda_arch("sm_70")


def test_tile_choice_fits_limits():
    from attncc.backends.cuda.arch import cuda_arch
    from attncc.backends.cuda.attention.resources import TileError, choose_tile, shared_bytes, violations

    a80 = cuda_arch("sm_80")
    t = choose_tile(4096, 128, 128, "float16", a80)
    assert (t.q_block, t.kv_block) == (64, 64) and not violations(t, 128, 128, "float16", a80)
    mla = choose_tile(128, 576, 512, "float16", a80)     # DeepSeek-V3 absorbed MLA: 512 latent + 64 rope dims
    assert not violations(mla, 576, 512, "float16", a80) and mla.q_block < 64   # 64 rows need > 64K registers
    assert shared_bytes(mla, 576, 512, "float16") <= a80.max_shared_per_block
    with pytest.raises(TileError, match="shared memory .* > 166912 B allowed on sm_80"):
        choose_tile(16, 8192, 8192, "float32", a80)


def test_forced_tile_over_limit_is_a_compile_error():
    from attncc.backends.core.errors import LoweringError

    with pytest.raises(LoweringError, match=r"cuda backend: node 'attn' \(Attention\): tile q_block=64 kv_block=64 .*"
                                            r"shared memory \d+ B per block > 232448 B allowed on sm_90a.*registers per block"):
        attncc.compile(attention_graph(d=512), target="cuda", options={"q_block": 64, "kv_block": 64, "cache": False})
    with pytest.raises(LoweringError, match=r"node 'attn' \(Attention\).*2048 threads per block > 1024 on sm_80"):
        attncc.compile(attention_graph(d=1024, dtype="float16"), target="cuda",
                       options={"arch": "sm_80", "q_block": 64, "kv_block": 32, "cache": False})


def test_blob_rewrite_keeps_structure():
    from attncc.backends.cuda.nvcc import _str, rewrite_cuda_entries

    fmap = b"\x01" + b"\x00" * 7 + _str(b"main_kernel")
    src = b'\n#include <cuda.h>\nextern "C" __global__ void main_kernel() {}'
    payload = _str(b"cuda") + fmap + _str(src)
    body = struct.pack("<QQQQ", 2, 0, 1, 1) + struct.pack("<Q", 1) + _str(b"_lib") + _str(b"cuda") + _str(payload)
    new, sources = rewrite_cuda_entries(struct.pack("<Q", len(body)) + body, [b"FATBIN"])
    assert sources == [src.decode()]
    assert new.endswith(_str(_str(b"fatbin") + fmap + _str(b"FATBIN")))
    assert struct.unpack_from("<Q", new)[0] == len(new) - 8


@NVCC
def test_small_model_compiles_exports_and_reports_no_device(tmp_path):
    """Codegen + nvcc for sm_80 and an export holding fatbin (ELF for sm_80) and sources; calling it here raises."""
    from attncc.backends.cuda.capabilities import cuda_device_present
    from attncc.backends.cuda.nvcc import fatbin_entries

    g = attention_graph(hq=4, hkv=2, sq=32, skv=32, d=32, causal=True, dtype="float16")
    cm = attncc.compile(g, target="cuda", options={"arch": "sm_80", "cache": False})
    assert not [n for n in cm.executable.notes if "generic TE attention" in n or "generic schedule" in n]
    files = cm.export(str(tmp_path))
    fatbin = (tmp_path / "cuda" / "kernels_0.fatbin").read_bytes()
    entries = fatbin_entries(fatbin)
    assert {"kind": "elf", "arch": 80} in [{k: e[k] for k in ("kind", "arch")} for e in entries]
    assert "attention_kernel" in (tmp_path / "cuda" / "kernels_0.cu").read_text()
    lib = (tmp_path / "kernels_0.so").read_bytes()
    assert lib[:4] == b"\x7fELF" and fatbin in lib and b"fatbin" in lib   # the binary, not the source, is embedded
    assert b'extern "C" __global__' not in lib
    assert str(tmp_path / "cuda" / "kernels_0.cu") in files
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["target"] == "cuda"
    if not cuda_device_present():
        with pytest.raises(RuntimeError, match="no CUDA device is present"):
            cm(*rng_arrays(g))


@pytest.mark.skipif(not __import__("glob").glob("/dev/nvidia[0-9]*"), reason="needs an NVIDIA GPU")
def test_runs_on_gpu_against_torch():
    import torch

    g = attention_graph(hq=8, hkv=2, sq=64, skv=64, d=64, causal=True, dtype="float16")
    cm = attncc.compile(g, target="cuda", options={"cache": False})
    q, k, v = (torch.tensor(a, device="cuda") for a in rng_arrays(g))
    out = cm(q, k, v)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    np.testing.assert_allclose(out[0].float().cpu().numpy(), want.float().cpu().numpy(), atol=2e-3)
