"""Numerics of the CPU attention kernel library (attncc.backends.cpu.attention)
against an explicit float64 matmul-softmax-matmul reference."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tvm")

from attncc.backends.cpu.attention import (  # noqa: E402
    AttentionKernelConfig, MaskMod, build_attention_kernel, clear_cache, score_mods)

RTOL, ATOL = 1e-4, 1e-5


def reference(cfg: AttentionKernelConfig, q, k, v, mask=None):
    """float64 reference; rows with no visible key give 0."""
    G = cfg.q_heads // cfg.kv_heads
    q = torch.as_tensor(np.asarray(q, dtype=np.float64)) if not torch.is_tensor(q) else q.double()
    k = torch.as_tensor(np.asarray(k, dtype=np.float64)) if not torch.is_tensor(k) else k.double()
    v = torch.as_tensor(np.asarray(v, dtype=np.float64)) if not torch.is_tensor(v) else v.double()
    k = k.repeat_interleave(G, dim=1)
    v = v.repeat_interleave(G, dim=1)
    s = (q @ k.transpose(-1, -2)) * cfg.scale
    if cfg.softcap is not None:
        s = cfg.softcap * torch.tanh(s / cfg.softcap)
    pos = torch.arange(cfg.q_len)[:, None] + cfg.position_offset
    j = torch.arange(cfg.kv_len)[None, :]
    keep = torch.ones(cfg.q_len, cfg.kv_len, dtype=torch.bool)
    if cfg.causal:
        keep &= j <= pos
    if cfg.window_left is not None:
        keep &= j >= pos - cfg.window_left
    if cfg.window_right is not None:
        keep &= j <= pos + cfg.window_right
    keep = keep.expand(s.shape)
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask)) if not torch.is_tensor(mask) else mask
        if cfg.mask_input == "bool":
            keep = keep & m.bool()
        else:
            s = s + m.double()
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return p @ v


def make_inputs(cfg, seed=0, lib="torch"):
    g = torch.Generator().manual_seed(seed)
    tdt = getattr(torch, cfg.dtype)
    q = torch.randn(cfg.batch, cfg.q_heads, cfg.q_len, cfg.head_dim, generator=g).to(tdt)
    k = torch.randn(cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.head_dim, generator=g).to(tdt)
    v = torch.randn(cfg.batch, cfg.kv_heads, cfg.kv_len, cfg.v_head_dim, generator=g).to(tdt)
    if lib == "numpy":
        return _np(q), _np(k), _np(v)
    return q, k, v


def _np(t):
    if t.dtype == torch.bfloat16:
        import ml_dtypes
        return t.view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def _t64(x):
    if torch.is_tensor(x):
        return x.double()
    return torch.from_numpy(np.asarray(x, dtype=np.float64))


def cfg_of(**kw):
    base = dict(batch=1, q_heads=4, kv_heads=4, q_len=64, kv_len=64, head_dim=32,
                v_head_dim=32, scale=None)
    base.update(kw)
    if base["scale"] is None:
        base["scale"] = base["head_dim"] ** -0.5
    return AttentionKernelConfig(**base)


def check(cfg, mask=None, lib="torch", rtol=RTOL, atol=ATOL, seed=0):
    kern = build_attention_kernel(cfg)
    q, k, v = make_inputs(cfg, seed, lib)
    out = kern(q, k, v, mask)
    assert type(out) is type(q)
    ref = reference(cfg, _t64(q), _t64(k), _t64(v), mask)
    got = out.float().double() if lib == "torch" else _t64(out)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=rtol, atol=atol)
    return kern, out, ref


# ------------------------------------------------------------------ prefill
CASES = {
    "mha": dict(),
    "mha_numpy": dict(_lib="numpy"),
    "gqa": dict(q_heads=8, kv_heads=2),
    "mqa": dict(q_heads=6, kv_heads=1, q_len=40, kv_len=100),
    "causal_bottom_right_q<k": dict(causal=True, q_len=77, kv_len=130),
    "causal_top_left_q<k": dict(causal=True, alignment="top_left", q_len=77, kv_len=130),
    "causal_bottom_right_q>k": dict(causal=True, q_len=130, kv_len=77),   # first rows fully masked
    "causal_top_left_q>k": dict(causal=True, alignment="top_left", q_len=130, kv_len=77),
    "window_left": dict(window_left=20, q_len=150, kv_len=150),
    "window_left_right": dict(window_left=17, window_right=9, q_len=100, kv_len=120),
    "window_causal": dict(causal=True, window_left=33, q_len=200, kv_len=200, kv_block=32),
    "softcap": dict(softcap=5.0, scale=1.0),
    "odd_lengths_batch_dqk_ne_dv": dict(batch=3, q_len=77, kv_len=130, q_heads=2, kv_heads=1,
                                        head_dim=64, v_head_dim=48),
    "odd_dims_scalar_pv": dict(head_dim=24, v_head_dim=7, q_len=33, kv_len=47),
    "blocks_small": dict(q_len=100, kv_len=200, q_block=16, kv_block=32, causal=True),
    "d128_causal_gqa": dict(q_heads=4, kv_heads=2, head_dim=128, v_head_dim=128, q_len=130,
                            kv_len=260, causal=True),
}


# default-suite budget: these run under -m slow (the default set keeps one case per kernel path; the hypothesis
# fuzz test (test_fuzz_cpu_vs_interpreter.py) samples the same space of masks/windows/lengths by default)
SLOW_PREFILL = {"mha_numpy", "mqa", "causal_bottom_right_q<k", "causal_top_left_q<k", "causal_top_left_q>k",
                "window_left", "window_left_right", "odd_lengths_batch_dqk_ne_dv", "blocks_small"}
SLOW_DECODE = {"q1_long_kv", "mqa_q1", "q4_causal_top_left", "q1_softcap_batch"}


def _params(names, slow):
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in names]


@pytest.mark.parametrize("name", _params(CASES, SLOW_PREFILL))
def test_prefill_numerics(name):
    kw = dict(CASES[name])
    lib = kw.pop("_lib", "torch")
    cfg = cfg_of(**kw)
    kern, _, _ = check(cfg, lib=lib)
    assert kern.kind == "prefill"


def test_fully_masked_rows_are_zero():
    cfg = cfg_of(causal=True, q_len=50, kv_len=20)            # bottom-right: 30 rows see nothing
    _, out, _ = check(cfg)
    assert torch.all(out[:, :, :30] == 0)
    assert torch.all(torch.isfinite(out))


# -------------------------------------------------------------------- masks
@pytest.mark.parametrize("shape", ["full", "b1", "h1", "2d"])
def test_bool_mask(shape):
    cfg = cfg_of(batch=2, q_heads=4, kv_heads=2, q_len=45, kv_len=70, mask_input="bool")
    g = torch.Generator().manual_seed(1)
    full = {"full": (2, 4, 45, 70), "b1": (1, 4, 45, 70), "h1": (2, 1, 45, 70), "2d": (45, 70)}[shape]
    m = torch.rand(full, generator=g) > 0.3
    if shape == "full":
        m[0, 1, 3] = False      # a fully masked row
    _, out, _ = check(cfg, mask=m)
    if shape == "full":
        assert torch.all(out[0, 1, 3] == 0)


def test_bool_mask_numpy_with_causal():
    cfg = cfg_of(q_len=40, kv_len=60, mask_input="bool", causal=True)
    m = np.random.default_rng(0).random((1, 1, 40, 60)) > 0.5
    check(cfg, mask=m, lib="numpy")


def test_additive_mask():
    cfg = cfg_of(batch=2, q_len=33, kv_len=65, mask_input="additive", softcap=3.0)
    g = torch.Generator().manual_seed(2)
    m = torch.randn(2, 1, 33, 65, generator=g)
    m[1, 0, 5, :] = float("-inf")           # fully masked row through the bias
    m[0, 0, :, 10:20] = float("-inf")
    _, out, _ = check(cfg, mask=m)
    assert torch.all(out[1, :, 5] == 0)


def test_mask_required_and_rejected():
    cfg = cfg_of(mask_input="bool")
    kern = build_attention_kernel(cfg)
    q, k, v = make_inputs(cfg)
    with pytest.raises(ValueError, match="mask"):
        kern(q, k, v)
    kern2 = build_attention_kernel(cfg_of())
    with pytest.raises(ValueError, match="mask"):
        kern2(q, k, v, torch.ones(64, 64, dtype=torch.bool))


# ------------------------------------------------------------------- decode
DECODE_CASES = {
    "q1_long_kv": dict(q_len=1, kv_len=3000, q_heads=8, kv_heads=2, head_dim=64, v_head_dim=64),
    "q1_splits": dict(q_len=1, kv_len=2000, num_splits=5, kv_block=64, head_dim=64, v_head_dim=64),
    "mqa_q1": dict(q_len=1, kv_len=777, q_heads=8, kv_heads=1, head_dim=64, v_head_dim=32),
    "q4_causal": dict(q_len=4, kv_len=515, causal=True, q_heads=4, kv_heads=2),
    "q4_causal_top_left": dict(q_len=4, kv_len=300, causal=True, alignment="top_left"),
    "q3_window": dict(q_len=3, kv_len=1000, causal=True, window_left=100, num_splits=4),
    "q1_softcap_batch": dict(q_len=1, kv_len=600, batch=3, softcap=2.0, scale=1.0),
    "q2_odd_dims": dict(q_len=2, kv_len=99, head_dim=20, v_head_dim=12),
}


@pytest.mark.parametrize("name", _params(DECODE_CASES, SLOW_DECODE))
def test_decode_numerics(name):
    cfg = cfg_of(**DECODE_CASES[name])
    kern, _, _ = check(cfg)
    assert kern.kind == "decode"


def test_decode_masks():
    cfg = cfg_of(q_len=1, kv_len=900, batch=2, q_heads=8, kv_heads=2, mask_input="bool",
                 num_splits=3)
    m = torch.rand(2, 1, 1, 900) > 0.5
    m[1] = False                                   # batch 1: nothing visible
    _, out, _ = check(cfg, mask=m)
    assert torch.all(out[1] == 0)
    cfg = cfg_of(q_len=2, kv_len=300, mask_input="additive")
    check(cfg, mask=torch.randn(1, 4, 2, 300))


# ----------------------------------------------------------- reduced precision
@pytest.mark.parametrize("dtype, q_len", [("bfloat16", 1), ("float16", 70), pytest.param("bfloat16", 70, marks=pytest.mark.slow),
                                          pytest.param("float16", 1, marks=pytest.mark.slow)])
def test_low_precision(dtype, q_len):
    # bf16/fp16 in and out, fp32 accumulation: error is dominated by output rounding
    cfg = cfg_of(dtype=dtype, q_len=q_len, kv_len=150, q_heads=4, kv_heads=2, causal=True)
    tol = 2e-2 if dtype == "bfloat16" else 3e-3
    _, out, _ = check(cfg, rtol=tol, atol=tol)
    assert out.dtype == getattr(torch, dtype)


def test_bf16_numpy():
    cfg = cfg_of(dtype="bfloat16", q_len=70, kv_len=150, q_heads=4, kv_heads=2, causal=True)
    check(cfg, lib="numpy", rtol=2e-2, atol=2e-2)


# ----------------------------------------------------------------- API bits
@pytest.mark.parametrize("field,kw", [
    ("q_heads", dict(q_heads=6, kv_heads=4)),
    ("window_left", dict(window_left=-1)),
    ("window_right", dict(window_right=-3)),
    ("mask_input", dict(mask_input="causal")),
    ("dtype", dict(dtype="int8")),
    ("alignment", dict(alignment="center")),
    ("softcap", dict(softcap=0.0)),
    ("head_dim", dict(head_dim=0, scale=1.0)),
    ("kv_block", dict(kv_block=48)),
])
def test_bad_config(field, kw):
    with pytest.raises(ValueError, match=field):
        cfg_of(**kw)


def test_bad_shapes_and_dtypes():
    cfg = cfg_of()
    kern = build_attention_kernel(cfg)
    q, k, v = make_inputs(cfg)
    with pytest.raises(ValueError, match="shape"):
        kern(q[:, :, :10], k, v)
    with pytest.raises(ValueError, match="dtype"):
        kern(q.double(), k, v)


def test_cache_and_out_argument(tmp_path):
    cfg = cfg_of(q_len=40, kv_len=50)
    k1 = build_attention_kernel(cfg)
    assert build_attention_kernel(dataclasses.replace(cfg)) is k1
    q, k, v = make_inputs(cfg)
    out = torch.full((1, 4, 40, 32), 7.0)
    res = k1(q, k, v, out=out)
    assert res is out
    np.testing.assert_allclose(out.double().numpy(), reference(cfg, q, k, v).numpy(),
                               rtol=RTOL, atol=ATOL)
    # non-contiguous inputs are accepted
    qt = q.transpose(2, 3).contiguous().transpose(2, 3)
    np.testing.assert_allclose(k1(qt, k, v).numpy(), out.numpy())
    # export and reload
    import tvm
    path = str(tmp_path / "attn.so")
    k1.export_library(path)
    lib = tvm.runtime.load_module(path)
    out2 = torch.zeros_like(out)
    lib["attention"](*[tvm.runtime.from_dlpack(x) for x in (q, k, v, out2)])
    np.testing.assert_allclose(out2.numpy(), out.numpy())


def test_new_mask_mod_is_one_function(monkeypatch):
    """A new mask variant is one function in the MASK_MODS table, not a new kernel."""
    def even_keys(ctx):
        return ctx.kj % 2 == 0

    mods = list(score_mods.MASK_MODS) + [MaskMod("even_keys", lambda c: True, even_keys)]
    monkeypatch.setattr(score_mods, "MASK_MODS", mods)
    clear_cache()
    try:
        for q_len in (1, 40):
            cfg = cfg_of(q_len=q_len, kv_len=70)
            kern = build_attention_kernel(cfg)
            q, k, v = make_inputs(cfg)
            m = torch.zeros(q_len, 70, dtype=torch.bool)
            m[:, ::2] = True
            ref = reference(dataclasses.replace(cfg, mask_input="bool"), q, k, v, m)
            np.testing.assert_allclose(kern(q, k, v).double().numpy(), ref.numpy(),
                                       rtol=RTOL, atol=ATOL)
    finally:
        clear_cache()


@pytest.mark.slow
def test_large_prefill_and_decode():
    check(cfg_of(q_heads=8, kv_heads=2, q_len=1024, kv_len=1024, head_dim=128,
                 v_head_dim=128, causal=True))
    check(cfg_of(q_heads=32, kv_heads=8, q_len=1, kv_len=8192, head_dim=128, v_head_dim=128))
