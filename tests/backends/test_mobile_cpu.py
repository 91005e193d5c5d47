"""mobile-cpu: capabilities from the catalog spec, NEON weight packing, cross-compiled aarch64 exports.

Fast checks only (the emulated runs are in test_mobile_cpu_emulated.py, marked slow). Nothing here loads
aarch64 code into this process: `tvm.runtime.load_module` is made to fail while the target compiles,
exports and re-loads.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import attncc
from attncc.backends import get_backend, target_capabilities
from attncc.cost_models.hardware import get_hardware

try:
    from .cpu_graphs import attention_graph, mlp_block
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import attention_graph, mlp_block

EM_AARCH64 = 183   # ELF e_machine of AArch64 (System V ABI, ELF for the Arm 64-bit Architecture)
needs_cross_cc = pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None,
                                    reason="aarch64-linux-gnu-gcc not installed (Debian gcc-aarch64-linux-gnu)")


def elf_machine(path: str) -> int:
    """e_machine of an ELF file, read from its header (independent of readelf)."""
    with open(path, "rb") as f:
        head = f.read(20)
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def test_capabilities_come_from_the_spec_without_tvm():
    code = ("import sys, attncc.backends as b; c = b.target_capabilities('mobile-cpu'); "
            "print(c.vector_width_bits, c.on_chip_bytes, c.second_level_bytes, c.runs_here); "
            "sys.exit(1 if 'tvm' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    spec = get_hardware("mobile-cpu")
    want = f"128 {spec.level('l1d').capacity_bytes} {spec.level('l2').capacity_bytes} False"
    assert done.stdout.split("\n")[0] == want
    caps = target_capabilities("mobile-cpu")
    assert set(caps.dtypes) >= {"float32", "float16"} and caps.tiles.accepts(16, 64) and not caps.tiles.accepts(3, 64)


def test_every_spec_figure_cites_a_source():
    spec = get_hardware("mobile-cpu")
    for unit in spec.compute_units:
        assert "http" in unit.source, unit.name
    for level in spec.levels:
        assert level.source and ("http" in level.source or "brief" in level.source), level.name
    codegen = spec.extra["codegen"]
    assert "http" in codegen["source"] and codegen["mcpu"] == "cortex-a76"
    assert 4 <= codegen["cores"] <= 8 and spec.parallel_units <= codegen["cores"]


def test_tvm_target_is_aarch64_neon_fp16_dotprod():
    target = get_backend("mobile-cpu").target({})
    assert target["kind"] == "llvm" and target["mtriple"] == "aarch64-linux-gnu" and target["mcpu"] == "cortex-a76"
    assert {"+neon", "+fullfp16", "+dotprod"} <= set(target["mattr"])
    assert target["num-cores"] == get_hardware("mobile-cpu").parallel_units
    assert get_backend("mobile-cpu").target({"mcpu": "cortex-x1", "num_cores": 4})["mcpu"] == "cortex-x1"


def test_neon_weight_panels_compute_the_product():
    from attncc.backends.mobile.cpu.matmul import NeonMatmul

    mm = NeonMatmul()
    rng = np.random.default_rng(0)
    x, w, u = rng.standard_normal((5, 24)), rng.standard_normal((24, 40)), rng.standard_normal((24, 40))
    panels = mm.pack_weight(w)
    assert panels.shape == mm.packed_shape(24, 40) == (3, 24, 16)
    # column n lives in panel n // 16 at lane n % 16; the padding columns are zero
    got = np.concatenate([x @ panels[p] for p in range(panels.shape[0])], axis=1)
    np.testing.assert_allclose(got[:, :40], x @ w, rtol=1e-12)
    assert not got[:, 40:].any()
    gated = mm.pack_gated(w, u)
    halves = [(x @ gated[p][:, :8], x @ gated[p][:, 8:]) for p in range(gated.shape[0])]
    np.testing.assert_allclose(np.concatenate([g for g, _ in halves], 1), x @ w, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([v for _, v in halves], 1), x @ u, rtol=1e-12)
    with pytest.raises(ValueError, match="N % 8"):
        mm.pack_gated(w[:, :12], u[:, :12])


@needs_cross_cc
def test_cross_compiled_export_is_aarch64_with_sources(tmp_path, monkeypatch):
    import tvm

    def no_load(path, *a, **k):
        raise AssertionError(f"mobile-cpu tried to load {path} into this x86 process")

    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tvm.runtime, "load_module", no_load)
    graph = attention_graph(hq=4, hkv=2, sq=16, skv=16, d=16, causal=True, mask="bool")
    cm = attncc.compile(graph, target="mobile-cpu")
    out = tmp_path / "out"
    files = cm.export(str(out))
    lib = out / "kernels_0.so"
    assert elf_machine(str(lib)) == EM_AARCH64
    asm = (out / "kernels_0.s").read_text()
    ir_text = (out / "kernels_0.ll").read_text()
    assert "fmla\tv" in asm and "aarch64" in ir_text          # NEON vector FMAs in the attention/matmul code
    assert "__tvm_ffi_" in asm
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "mobile-cpu" and manifest["hardware"] == "mobile-cpu"
    assert manifest["tvm_target"]["mtriple"] == "aarch64-linux-gnu"
    assert {"kernels_0.so", "kernels_0.s", "kernels_0.ll", "report.json"} <= set(manifest["files"])
    assert "hardware: mobile-cpu" in (out / "report.txt").read_text()
    assert str(out / "kernels_0.s") in files
    steps = [s for s in json.loads((out / "plan_0.json").read_text())["steps"] if s["kind"] == "attention"]
    assert steps and steps[0]["kernel"]["kind"] == "te-row-streaming"
    # a second compile is a disk-cache hit: the library stays a file, the export still carries its sources
    monkeypatch.setattr(get_backend("mobile-cpu").cache, "memory", {})
    again = attncc.compile(graph, target="mobile-cpu")
    runner = next(iter(again.executable.artifacts["program"].runners.values()))
    assert type(runner.lib).__name__ == "CrossLibrary"
    again.export(str(tmp_path / "again"))
    assert elf_machine(str(tmp_path / "again" / "kernels_0.so")) == EM_AARCH64
    assert (tmp_path / "again" / "kernels_0.s").read_text() == asm


@needs_cross_cc
def test_shape_generic_mlp_builds_and_calls_need_emulation(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNCC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("ATTNCC_ARM64_ROOT", str(tmp_path / "no-sysroot"))
    cm = attncc.compile(mlp_block(), target="mobile-cpu")
    from attncc.backends.mobile.cpu.emulate import EmulationError

    with pytest.raises(EmulationError, match="arm64_sysroot.sh"):
        cm(np.zeros((2, 24, 64), np.float32))
    program = cm.executable.artifacts["program"]
    assert "generic" in program.runners, program.notes   # one build for every batch size
    assert not [n for n in program.notes if "generic schedule" in n], program.notes


def test_attention_kernel_reads_broadcast_masks_like_torch_sdpa():
    """The mobile-cpu attention PrimFunc takes the mask as the core passes it, (1|B, 1|Hq, Sq, Skv): built for
    the host here (same TIR, host LLVM) and checked against torch SDPA for every broadcast form."""
    import torch
    import tvm

    from attncc.backends.core.attention_config import AttentionKernelConfig
    from attncc.backends.mobile.cpu.attention import attention_primfunc

    b, hq, hkv, s, d = 2, 4, 2, 12, 8
    rng = np.random.default_rng(0)
    for kind in ("bool", "additive"):
        cfg = AttentionKernelConfig(batch=b, q_heads=hq, kv_heads=hkv, q_len=s, kv_len=s, head_dim=d, v_head_dim=d,
                                    scale=d ** -0.5, dtype="float32", mask_input=kind)
        func, _ = attention_primfunc(cfg, {"num-cores": 4})
        kernel = tvm.compile(func, target="llvm")["main"]
        for mshape in [(b, 1, s, s), (1, hq, s, s), (1, 1, s, s), (b, hq, s, s)]:
            q = rng.standard_normal((b, hq, s, d), dtype=np.float32)
            k, v = (rng.standard_normal((b, hkv, s, d), dtype=np.float32) for _ in range(2))
            if kind == "bool":
                mask = rng.random(mshape) > 0.3
                mask[..., 0] = True   # no fully masked row (SDPA gives NaN there, attncc 0)
                arg = mask.astype(np.uint8)
            else:
                mask = arg = rng.standard_normal(mshape).astype(np.float32)
            out = tvm.runtime.empty((b, hq, s, d), "float32")
            kernel(*[tvm.runtime.tensor(x) for x in (q, k, v, arg)], out)
            t = torch.from_numpy
            want = torch.nn.functional.scaled_dot_product_attention(
                t(q), t(k).repeat_interleave(hq // hkv, 1), t(v).repeat_interleave(hq // hkv, 1), attn_mask=t(mask))
            np.testing.assert_allclose(out.numpy(), want.numpy(), rtol=1e-4, atol=1e-5, err_msg=f"{kind} {mshape}")
