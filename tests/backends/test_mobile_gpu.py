"""mobile-gpu (OpenCL): capabilities from the cited spec, tiles vs the device limits, OpenCL generation, fp16
builds, export folders, and (where an OpenCL device builds kernels) runs checked against independent oracles.

Fast tests need no OpenCL device: they compile with TVM and inspect the plan, launch table and source. The
runs (`needs_opencl`) use PoCL's CPU device through pyopencl and skip with the device's own error when it cannot
build kernels (PoCL 3.0 bundled in pyopencl wheels uses LLVM 14, which names a Zen 5 host CPU 'generic' and
then rejects it: 'unknown target CPU'). Debian's PoCL 3.1 (LLVM 15, falls back to a known CPU) works there:
extract libpocl2/libpocl2-common/libclang-cpp15/libhwloc15 and point OCL_ICD_VENDORS at an .icd file naming its
libpocl.so.2 (LD_LIBRARY_PATH at its libs). PoCL has no cl_khr_fp16: fp16 builds compile here, runs are fp32.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import attncc
from attncc.backends import target_capabilities
from attncc.backends.mobile.gpu.spec import opencl_problem
from attncc.ir import run_graph

try:
    from .cpu_graphs import attention_graph, rng_arrays
except ImportError:  # tests/backends is not a package: pytest put it on sys.path
    from cpu_graphs import attention_graph, rng_arrays

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "cost_models", "specs", "mobile-gpu.json")
RTOL, ATOL = 1e-4, 1e-5


needs_opencl = pytest.mark.skipif(opencl_problem() is not None, reason=str(opencl_problem()))


def _plan(cm):
    runners = cm.executable.artifacts["program"].runners
    assert len(runners) == 1
    return next(iter(runners.values()))


# ---- no TVM, no device ---------------------------------------------------------------------------
def test_capabilities_come_from_the_cited_spec_without_tvm():
    code = ("import sys, attncc.backends as b; c = b.target_capabilities('mobile-gpu'); "
            "print(c.on_chip_bytes, c.tiles.q_block_max, c.tiles.q_block_multiple, ','.join(c.dtypes)); "
            "sys.exit(1 if 'tvm' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    with open(SPEC) as f:
        spec = json.load(f)["opencl"]
    p = spec["portable"]
    assert done.stdout.split("\n")[0] == (f"{p['local_mem_bytes']} {p['max_work_group_size']} {p['subgroup_size']} "
                                          + ("float32,float16" if p["fp16"] else "float32"))
    # the portable figures are the minimum over the cited devices, each with a datasheet/guide URL
    devices = spec["devices"]
    assert devices and all("http" in d["source"] for d in devices.values())
    for key in ("max_work_group_size", "local_mem_bytes"):
        assert p[key] <= min(d[key] for d in devices.values()), key


# ---- tiles vs limits -----------------------------------------------------------------------------
def test_matmul_tiles_fit_the_limits_and_oversized_tiles_are_errors():
    from attncc.backends.mobile.gpu.matmul import TileDoesNotFit, check_fit, tiles_for
    from attncc.backends.mobile.gpu.spec import OpenClLimits, opencl_limits

    lim = opencl_limits()
    for m in (1, 6, 8, 31, 32, 256, 4096):
        for n in (1, 32, 64, 1000, 4096):
            for k in (None, 8, 17, 32, 33, 4096):
                tm, tn, rm, rn, tk = tiles_for(m, n, lim, k)
                assert tm * tn <= lim.max_work_group_size
                assert 4 * tk * (tm * rm + tn * rn) <= lim.local_mem_bytes
                check_fit("mm", tm, tn, rm, rn, tk, lim)
                assert k is None or -(-k // tk) != 2, (m, n, k, tk)   # PoCL mis-runs two-trip barrier loops
    small = OpenClLimits(64, 4096, 8, False, "buffer", "test")
    with pytest.raises(TileDoesNotFit, match=r"node 'mm' \(MatMul\).*8x16 work-items exceeds the max work-group size 64"):
        check_fit("mm", 8, 16, 1, 1, 16, small)
    with pytest.raises(TileDoesNotFit, match=r"local memory, over the 4096 B limit"):
        check_fit("mm", 4, 16, 4, 4, 16, small)


def test_attention_tiles_fit_the_limits_and_oversized_tiles_are_errors():
    from attncc.backends.core.attention_config import AttentionKernelConfig
    from attncc.backends.mobile.gpu.attention import attention_tiles
    from attncc.backends.mobile.gpu.matmul import TileDoesNotFit
    from attncc.backends.mobile.gpu.spec import opencl_limits

    lim = opencl_limits()

    def cfg(**kw):
        base = dict(batch=1, q_heads=4, kv_heads=2, q_len=100, kv_len=300, head_dim=64, v_head_dim=64, scale=0.125)
        return AttentionKernelConfig(**{**base, **kw})

    for d in (8, 64, 128, 256, 512):
        qb, kb = attention_tiles(cfg(head_dim=d, v_head_dim=d), lim)
        assert qb <= lim.max_work_group_size and qb % lim.subgroup_size == 0
        assert 4 * kb * 2 * d <= lim.local_mem_bytes, d        # the K and V tiles staged in local memory
    assert attention_tiles(cfg(q_len=3), lim)[0] == lim.subgroup_size   # no idle work-items past a short query
    with pytest.raises(TileDoesNotFit, match="over the max work-group size 256"):
        attention_tiles(cfg(q_block=512), lim)
    with pytest.raises(TileDoesNotFit, match="kv_block 64 stages 65536 B of K/V in local memory, over the 32768 B"):
        attention_tiles(cfg(head_dim=128, v_head_dim=128, kv_block=64), lim)


def test_an_oversized_attention_tile_is_a_compile_error_naming_the_node(monkeypatch):
    """The tile pass's kv_block (or a user's) over local memory: an error naming node, op and limit, not a
    silent fallback and not an exception at call time."""
    from attncc.ir.ops.attention import Tiling

    g = attention_graph(hq=2, hkv=2, sq=8, skv=64, d=128)
    node = g.find("Attention")[0]
    node.op = type(node.op)(spec=node.op.spec, tiling=Tiling(q_block=8, kv_block=64))
    from attncc.backends.core.errors import LoweringError

    with pytest.raises(LoweringError, match=r"node 'attn' \(Attention\).*65536 B.*over the 32768 B limit"):
        attncc.compile(g, target="mobile-gpu", passes="canonicalize", options={"cache": False})
    # symbolic batch: mobile-gpu builds per input shape at the call, which raises the same named error
    from attncc import ir
    from attncc.ir.ops import Attention

    dyn = ir.Graph("dyn")
    ins = [dyn.add_input(n, "float32", ("batch", 2, s, 128)) for n, s in (("q", 8), ("k", 64), ("v", 64))]
    out = dyn.add(Attention(spec=node.op.spec, tiling=Tiling(q_block=8, kv_block=64)), ins, name="attn")
    dyn.set_outputs(list(out))
    cm = attncc.compile(dyn, target="mobile-gpu", passes="canonicalize", options={"cache": False})
    with pytest.raises(LoweringError, match=r"node 'attn' \(Attention\).*over the 32768 B limit"):
        cm(*rng_arrays(dyn, shapes={"batch": 1}))


# ---- OpenCL generation, launch table, export -----------------------------------------------------
@pytest.fixture(scope="module")
def gqa_masked(tmp_path_factory):
    """Causal GQA attention with a broadcast (1, 1, Sq, Skv) bool mask, compiled once (no device needed)."""
    g = attention_graph(hq=4, hkv=2, sq=16, skv=24, d=16, causal=True, mask="bool", mask_shape=(1, 1, 16, 24))
    cm = attncc.compile(g, target="mobile-gpu", options={"cache": False})
    out = tmp_path_factory.mktemp("mobile_gpu_export")
    cm.export(str(out))
    return g, cm, out


def test_flash_kernel_is_generated_as_opencl_within_the_limits(gqa_masked):
    from attncc.backends.mobile.gpu.spec import opencl_limits

    g, cm, _ = gqa_masked
    runner = _plan(cm)
    lim = opencl_limits()
    assert not [n for n in cm.executable.notes if "generic TE attention" in n], cm.executable.notes
    steps = [s for s in runner.plan.steps if s["kind"] == "attention"]
    assert len(steps) == 1 and steps[0]["kernel"]["kind"] == "opencl-flash"
    assert steps[0]["kernel"]["local_bytes"] <= lim.local_mem_bytes
    # the broadcast mask reaches the kernel expanded to (B, Hq, Sq, Skv): the kernel indexes it at (b, h)
    assert steps[0]["mask"][1] == [2, 4, 16, 24]
    src = runner.lib.source
    assert "__kernel void" in src and "__local float" in src and "barrier(CLK_LOCAL_MEM_FENCE)" in src
    for launches in runner.lib.launches.values():
        for launch in launches:
            assert int(np.prod(launch["local"])) <= lim.max_work_group_size, launch
            assert f"__kernel void {launch['kernel']}(" in src


def test_export_folder_has_sources_launch_table_and_manifest(gqa_masked):
    from attncc.backends.mobile.gpu.spec import opencl_limits

    g, cm, out = gqa_masked
    names = set(os.listdir(out))
    assert {"kernels_0.cl", "kernels_0.json", "manifest.json", "plan_0.json", "plans.json"} <= names
    assert "run.py" not in names   # the TVM-runtime runner does not apply to OpenCL builds
    with open(out / "kernels_0.json") as f:
        lib = json.load(f)
    assert lib["format"] == "attncc-opencl-1" and lib["launches"]
    assert (out / "kernels_0.cl").read_text() == lib["source"]
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    lim = opencl_limits()
    assert manifest["target"] == "mobile-gpu" and manifest["hardware"] == "mobile-gpu"   # the catalog spec priced
    assert manifest["tvm_target"]["max_num_threads"] == lim.max_work_group_size
    assert manifest["tvm_target"]["max_shared_memory_per_block"] == lim.local_mem_bytes
    loaded = attncc.load(str(out))   # read back without recompiling
    assert _plan(loaded).lib.source == lib["source"]


def test_fp16_builds_compile_to_half_opencl():
    g = attention_graph(hq=2, hkv=2, sq=8, skv=8, d=16, causal=True, dtype="float16")
    cm = attncc.compile(g, target="mobile-gpu", options={"cache": False})
    src = _plan(cm).lib.source
    assert "half" in src and "cl_khr_fp16" in src
    if opencl_problem() is None:
        import pyopencl as cl

        from attncc.backends.mobile.gpu.executor import opencl_queue

        dev = opencl_queue()[2]
        if "cl_khr_fp16" not in dev.extensions:   # PoCL: compiled, not run (the fp32 runs cover the numerics)
            with pytest.raises(Exception, match="cl_khr_fp16"):
                cm(*rng_arrays(g))


# ---- runs on an OpenCL device (PoCL here) --------------------------------------------------------
@needs_opencl
@pytest.mark.parametrize("m,k,n", [(6, 32, 32), pytest.param(17, 32, 40, marks=pytest.mark.slow),
                                   pytest.param(33, 48, 72, marks=pytest.mark.slow)])
def test_linear_matches_numpy(m, k, n):
    """Tiled matmul incl. K=32 (two 16-deep tiles: PoCL left every output unwritten; now one 32-deep tile),
    ragged row/column tiles (idle work-items) and a bias."""
    from attncc import ir
    from attncc.ir.ops import Linear

    rng = np.random.default_rng(0)
    w, bias = rng.standard_normal((k, n)).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    g = ir.Graph("mm")
    x = g.add_input("x", "float32", (1, m, k))
    g.set_outputs([g.add1(Linear(has_bias=True), [x, g.add_constant(w, "w"), g.add_constant(bias, "b")], name="fc")])
    cm = attncc.compile(g, target="mobile-gpu", options={"cache": False})
    xs = rng.standard_normal((1, m, k)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(cm(xs)), xs @ w + bias, rtol=RTOL, atol=1e-4)


@needs_opencl
def test_broadcast_masked_gqa_matches_torch_sdpa(gqa_masked):
    import torch

    g, cm, _ = gqa_masked
    q, k, v, mask = rng_arrays(g, seed=3)
    got = np.asarray(cm(q, k, v, mask))
    keep = torch.from_numpy(mask) & torch.ones(16, 24, dtype=torch.bool).tril(24 - 16)   # causal, bottom-right
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k).repeat_interleave(2, 1), torch.from_numpy(v).repeat_interleave(2, 1),
        attn_mask=keep)
    want = torch.nan_to_num(want, nan=0.0)   # rows with every key masked: 0 in attncc, NaN in SDPA
    np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL)


@needs_opencl
@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(causal=True), dict(hq=8, hkv=2, causal=True), dict(mask="additive", mask_shape=(32, 32)),
    dict(mask="bool", mask_shape=(1, 1, 32, 32)), dict(mask="bool"), dict(window=8, causal=True),
    dict(hq=8, hkv=1, sq=1, skv=64), dict(causal=True, alignment="top_left", sq=16), dict(d=64, sq=40, skv=70),
    dict(skv=64), dict(skv=64, mask="bool", mask_shape=(64,)), dict(sq=64, skv=64, hq=2, hkv=1, d=8),
    # a causal band spelled as a -inf bias (ONNX's expanded Attention): rows diverge on masked keys
    dict(sq=4, skv=6, d=8, hq=3, hkv=3, mask="additive", mask_shape=(2, 1, 4, 6), neg_inf=True)],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_flash_kernel_matches_torch_sdpa(kw):
    import torch

    kw = dict(kw)
    neg_inf = kw.pop("neg_inf", False)
    g = attention_graph(**kw)
    cm = attncc.compile(g, target="mobile-gpu", options={"cache": False})
    assert not [n for n in cm.executable.notes if "generic TE attention" in n], cm.executable.notes
    arrays = rng_arrays(g, seed=1)
    if neg_inf:
        sq, skv = arrays[0].shape[2], arrays[1].shape[2]
        arrays[3] = arrays[3] + np.where(np.tri(sq, skv, 0, dtype=bool), 0, -np.inf).astype(np.float32)
    got = np.asarray(cm(*arrays))
    q, k, v = (torch.from_numpy(a) for a in arrays[:3])
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    sq, skv = q.shape[2], k.shape[2]
    rows, cols = torch.arange(sq)[:, None], torch.arange(skv)[None, :]
    pos = rows + (skv - sq if kw.get("alignment", "bottom_right") == "bottom_right" else 0)
    keep = torch.ones(sq, skv, dtype=torch.bool)
    if kw.get("causal"):
        keep &= cols <= pos
    if kw.get("window") is not None:
        keep &= cols >= pos - kw["window"]
    bias = torch.zeros(sq, skv).masked_fill(~keep, float("-inf"))
    if kw.get("mask") == "bool":
        bias = bias.masked_fill(~torch.from_numpy(arrays[3]), float("-inf"))
    elif kw.get("mask") == "additive":
        bias = bias + torch.from_numpy(arrays[3])
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    want = torch.nan_to_num(want, nan=0.0)   # rows with every key masked: 0 in attncc, NaN in SDPA
    np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL)


@needs_opencl
@pytest.mark.slow
@pytest.mark.parametrize("which", ["decoder", "vit"])
def test_llama_and_vit_blocks_match_the_interpreter(which):
    import torch

    from tests.backends.mobile_models import make_decoder_layer, make_patch_vit

    module, inputs = make_decoder_layer() if which == "decoder" else make_patch_vit()
    cm = attncc.compile(module, inputs, target="mobile-gpu", options={"cache": False})
    arrays = [x.numpy() for x in inputs]
    want = run_graph(cm.graph, arrays)
    with torch.no_grad():
        eager = module(*inputs)
    eager = eager if isinstance(eager, tuple) else (eager,)
    for w, e in zip(want, eager):   # the interpreter itself agrees with torch eager
        np.testing.assert_allclose(np.asarray(w), e.numpy(), rtol=RTOL, atol=ATOL)
    got = cm(*arrays)
    got = got if isinstance(got, (list, tuple)) else [got]
    for a, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(w), rtol=RTOL, atol=ATOL)


@needs_opencl
@pytest.mark.slow
@pytest.mark.parametrize("epi", ["projection", "residual"])
def test_fused_attention_epilogue_matches_the_interpreter(epi):
    from attncc.pipelines import default_pipeline
    from tests.passes.cases import epilogue

    g = epilogue()
    ins = [np.random.default_rng(1).standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    want = run_graph(g, ins)[0]
    passes = default_pipeline("mobile-gpu").replace(",fuse-attention,", f",fuse-attention{{epilogue={epi}}},")
    cm = attncc.compile(g, target="mobile-gpu", passes=passes, options={"cache": False})
    np.testing.assert_allclose(np.asarray(cm(*ins)), want, rtol=RTOL, atol=ATOL)
