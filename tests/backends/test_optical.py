"""target="optical": the simulated 4f machine against independent oracles (numpy x @ w, torch conv2d, the IR
interpreter on the same graph, torch eager for compiled models), error trends in bits and noise, the two signed
encodings, frame tiling beyond the aperture, and the program's counts against the cost model's formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attncc
from attncc import ir
from attncc.backends import get_backend
from attncc.backends.optical import mapping
from attncc.backends.optical.config import OpticalOptionError, config_from_options
from attncc.backends.optical.physics import Counters, Simulator
from attncc.cost_models import optical4f

RNG = np.random.default_rng(0)
EXACT = dict(bits=24, noise=False)   # "high bit depth, noise off"


def rel(y, ref) -> float:
    return float(np.linalg.norm(y - ref) / np.linalg.norm(ref))


def linear_graph(x_shape, w: np.ndarray, b: np.ndarray | None = None) -> ir.Graph:
    g = ir.Graph("lin")
    x = g.add_input("x", "float32", x_shape)
    ins = [x, g.add_constant(w, "w")] + ([g.add_constant(b, "b")] if b is not None else [])
    h = g.add1(ir.Linear(has_bias=b is not None), ins, name="fc")
    g.set_outputs([g.add1(ir.Activation("gelu"), [h], name="act")])
    return g


def run_optical(graph: ir.Graph, inputs, **options):
    exe = get_backend("optical").lower(graph, options)
    return exe(inputs), exe


def test_matmul_high_bits_noise_off_matches_numpy_and_counts_match_cost_model():
    cfg, dev = config_from_options(dict(EXACT, aperture=32))
    x, w = RNG.normal(size=(50, 70)), RNG.normal(size=(70, 40))   # k, n larger than the 32x32 aperture
    st = Counters()
    work = optical4f.matmul(dev, 50, 70, 40)
    y = mapping.matmul(Simulator(cfg), x, w, work.tile, st)
    assert rel(y, x @ w) < 1e-5
    np.testing.assert_allclose(y, x @ w, rtol=1e-3, atol=1e-3 * np.abs(x @ w).max())
    # the simulator executed exactly the frames and filter refreshes the cost model prices
    assert (st.frames, st.filter_loads) == (work.frames, work.filter_updates)
    assert math.ceil(70 / 32) > 1 and math.ceil(40 / work.tile[1]) > 1   # really tiled in k and n


@pytest.mark.parametrize("weights", ["two_pass", "bias"])
@pytest.mark.parametrize("inputs", ["two_pass", "bias"])
def test_signed_encodings_both_correct(weights, inputs):
    cfg, dev = config_from_options(dict(EXACT, aperture=24, signed_weights=weights, signed_inputs=inputs))
    x, w = RNG.normal(size=(30, 20)), RNG.normal(size=(20, 12))
    st = Counters()
    work = optical4f.matmul(dev, 30, 20, 12)
    y = mapping.matmul(Simulator(cfg), x, w, work.tile, st)
    np.testing.assert_allclose(y, x @ w, rtol=1e-3, atol=1e-3 * np.abs(x @ w).max())
    passes = (2 if weights == "two_pass" else 1)
    assert st.filter_loads == passes * math.ceil(12 / work.tile[1])     # two-pass weights: two filters per tile
    assert (st.frames, st.filter_loads) == (work.frames, work.filter_updates)   # two-pass inputs: 2x frames


def test_bias_encoding_costs_dynamic_range_under_noise():
    """Same noise, same bits: the bias rides the signal on a pedestal, so it loses more than two passes."""
    x, w = RNG.normal(size=(40, 16)), RNG.normal(size=(16, 8))
    errs = {}
    for pol in ("two_pass", "bias"):
        cfg, dev = config_from_options(dict(bits=8, aperture=32, signed_weights=pol, signed_inputs=pol))
        tile = optical4f.matmul(dev, 40, 16, 8).tile
        errs[pol] = np.mean([rel(mapping.matmul(Simulator(cfg.__class__(**{**cfg.describe(), "seed": s})), x, w, tile,
                                                Counters()), x @ w) for s in range(3)])
    assert errs["two_pass"] < errs["bias"]


def _avg_err(x, w, seeds=3, **options) -> float:
    cfg, dev = config_from_options(dict(aperture=32, **options))
    tile = optical4f.matmul(dev, *x.shape, w.shape[1]).tile
    errs = []
    for s in range(seeds):
        c = cfg.__class__(**{**cfg.describe(), "seed": s})
        errs.append(rel(mapping.matmul(Simulator(c), x, w, tile, Counters()), x @ w))
    return float(np.mean(errs))


def test_error_grows_as_bits_drop():
    x, w = RNG.normal(size=(40, 24)), RNG.normal(size=(24, 10))
    errs = [_avg_err(x, w, bits=b, noise=False) for b in (12, 10, 8, 6, 4)]
    assert all(a < b for a, b in zip(errs, errs[1:])), errs
    assert errs[0] < 1e-2 < errs[-1]


def test_error_grows_with_noise():
    x, w = RNG.normal(size=(40, 24)), RNG.normal(size=(24, 10))
    shot = [_avg_err(x, w, bits=16, read_noise=False, full_well_e=fw) for fw in (1e7, 1e5, 1e3, 1e2)]
    read = [_avg_err(x, w, bits=16, shot_noise=False, read_noise_e=r, full_well_e=1e4) for r in (0.1, 3, 30, 300)]
    for errs in (shot, read):
        assert all(a < b for a, b in zip(errs, errs[1:])), errs


def test_planes_larger_than_aperture_overlap_save_matches_torch():
    cfg, _ = config_from_options(dict(EXACT, aperture=16))
    planes, k = RNG.normal(size=(3, 37, 29)), RNG.normal(size=(5, 4))
    st = Counters()
    y = mapping.correlate_planes(Simulator(cfg), planes, k, st)
    want = F.conv2d(torch.from_numpy(planes)[:, None], torch.from_numpy(k)[None, None]).numpy()[:, 0]
    np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    tiles = math.ceil(33 / 12) * math.ceil(26 / 13)               # (A - k + 1) valid outputs per tile and axis
    assert st.frames == 3 * tiles * 2 * 2        # one tile per frame, two sign passes of k x two of the signed planes
    with pytest.raises(ValueError, match="exceeds the 16x16 aperture"):
        mapping.correlate_planes(Simulator(cfg), planes, RNG.normal(size=(17, 3)), Counters())


def test_small_planes_share_frames_and_counts_match_cost_model():
    cfg, dev = config_from_options(dict(EXACT, aperture=32))
    planes, k = RNG.random(size=(20, 8, 7)), RNG.random(size=(3, 3))        # non-negative: one pass
    st = Counters()
    y = mapping.correlate_planes(Simulator(cfg), planes, k, st)
    want = F.conv2d(torch.from_numpy(planes)[:, None], torch.from_numpy(k)[None, None]).numpy()[:, 0]
    np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    work = optical4f.correlate(dev, 20, (8, 7), (3, 3), signed_weights=False, signed_inputs=False)
    assert (st.frames, st.filter_loads) == (work.frames, work.filter_updates) == (2, 1)   # 16 planes per frame


def test_bitplane_dmd_one_frame_per_bit_and_coherent_detection():
    x, w = RNG.normal(size=(10, 8)), RNG.normal(size=(8, 6))
    for opts, frames_per in ((dict(input_mode="bitplanes", bits=16), 16), (dict(detection="coherent", bits=24), 1)):
        cfg, dev = config_from_options(dict(opts, noise=False, aperture=32))
        st = Counters()
        y = mapping.matmul(Simulator(cfg), x, w, (8, 6), st)
        assert rel(y, x @ w) < 2e-3
        passes = 1 if cfg.detection == "coherent" else 2 * 2   # coherent reads the sign: no sign passes
        assert st.frames == frames_per * passes


def test_amplitude_and_phase_only_filters_are_a_different_operation():
    """Dropping the filter's phase (amplitude-only) or amplitude (phase-only) changes the result, by design."""
    planes, k = RNG.random(size=(4, 12, 12)), RNG.random(size=(3, 3))
    want = mapping._valid_corr(planes, k)
    errs = {}
    for mode in ("complex", "amplitude", "phase"):
        cfg, _ = config_from_options(dict(EXACT, aperture=32, filter_mode=mode))
        errs[mode] = rel(mapping.correlate_planes(Simulator(cfg), planes, k, Counters()), want)
    assert errs["complex"] < 1e-5 and errs["amplitude"] > 1e-2 and errs["phase"] > 1e-2


def test_graph_matches_interpreter_and_program_lists_ops():
    w, b = RNG.normal(size=(24, 40)).astype(np.float32), RNG.normal(size=40).astype(np.float32)
    g = linear_graph((3, 5, 24), w, b)
    x = RNG.normal(size=(3, 5, 24)).astype(np.float32)
    ref = ir.run_graph(g, [x])[0]
    (y,), exe = run_optical(g, [x], aperture=32, **EXACT)
    assert y.dtype == np.float32 and y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    prog = exe.artifacts["optical_program"]
    rows = {r.node: r.as_dict() for r in prog.rows}
    assert rows["fc"]["where"] == "optical" and rows["fc"]["frames"] > 0 and rows["fc"]["bytes_to_slm"] > 0
    assert rows["act"]["where"] == "host" and rows["act"]["frames"] == 0 and "numpy" in rows["act"]["host_work"]
    assert "fc" in prog.table()


def test_unknown_option_is_a_clear_error():
    with pytest.raises(OpticalOptionError, match="unknown option.*'bitz'.*known"):
        config_from_options({"bitz": 8})
    with pytest.raises(OpticalOptionError, match="filter_mode='holo'"):
        config_from_options({"filter_mode": "holo"})


CONV = [  # (C_in, C_out, kernel, stride, padding, dilation, groups)
    (2, 3, (3, 3), 1, 1, 1, 1),
    (4, 4, (3, 2), (2, 1), (1, 0), (1, 2), 2),
    (3, 6, (4, 4), 4, 0, 1, 1),          # ViT patch embedding
]


@pytest.mark.parametrize("case", CONV)
def test_convolution_matches_torch(case):
    c_in, c_out, k, stride, pad, dil, groups = case
    x = RNG.normal(size=(2, c_in, 9, 8)).astype(np.float32)
    w = RNG.normal(size=(c_out, c_in // groups, *k)).astype(np.float32)
    bias = RNG.normal(size=c_out).astype(np.float32)
    g = ir.Graph("conv")
    ins = [g.add_input("x", "float32", x.shape), g.add_constant(w, "w"), g.add_constant(bias, "b")]
    g.set_outputs([g.add1(ir.Convolution.make(2, stride, pad, dil, groups), ins, name="conv")])
    (y,), exe = run_optical(g, [x], aperture=24, **EXACT)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias), stride, pad, dil, groups).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert exe.artifacts["optical_program"].rows[0].where == "optical"


def test_depthwise_shared_kernel_loads_one_filter():
    C = 6
    k = np.abs(RNG.normal(size=(1, 1, 3, 3))).astype(np.float32)
    w = np.repeat(k, C, axis=0)                                   # ConvShareViT: one kernel for every channel
    x = np.abs(RNG.normal(size=(2, C, 10, 10))).astype(np.float32)
    g = ir.Graph("dw")
    ins = [g.add_input("x", "float32", x.shape), g.add_constant(w, "w")]
    g.set_outputs([g.add1(ir.Convolution.make(2, 1, 0, 1, C), ins, name="dw")])
    (y,), exe = run_optical(g, [x], aperture=64, **EXACT)
    want = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), groups=C).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    assert exe.artifacts["optical_program"].rows[0].work.filter_loads == 1


def test_compile_torch_models_for_optical_match_eager(tmp_path):
    """attncc.compile(target="optical") on plain MHA and on ConvShareViT attention (shared convs in light)."""
    from attncc.nn.convshare import ConvShareAttention

    torch.manual_seed(0)

    class Block(torch.nn.Module):
        def __init__(self, convshare: bool):
            super().__init__()
            self.fc = torch.nn.Linear(8, 16)
            self.att = ConvShareAttention(16, 2, (4, 4), 2) if convshare else torch.nn.MultiheadAttention(16, 2, batch_first=True)
            self.convshare = convshare

        def forward(self, x):
            h = torch.relu(self.fc(x))
            return self.att(h) if self.convshare else self.att(h, h, h, need_weights=False)[0]

    x = torch.randn(2, 16, 8)
    for convshare in (False, True):
        m = Block(convshare).eval()
        compiled = attncc.compile(m, (x,), target="optical", options=dict(EXACT, aperture=64))
        want = m(x).detach().numpy()
        got = compiled(x).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
        att = [r for r in compiled.executable.artifacts["optical_program"].rows if r.op == "Attention"]
        assert att and att[0].where == "optical+host" and att[0].work.dynamic_loads > 0
        if convshare:
            assert any("conv_share" in n for n in att[0].work.notes)
            compiled.export(str(tmp_path))                  # graph + simulator options; load rebuilds the machine
            np.testing.assert_allclose(attncc.load(str(tmp_path))(x).numpy(), got, rtol=1e-6, atol=1e-6)
    assert {"name": "optical", "status": "available"}.items() <= next(
        t for t in attncc.targets() if t["name"] == "optical").items()


@pytest.mark.parametrize("mask", ["causal", "bool"])
def test_gqa_attention_in_light_matches_interpreter(mask):
    """QKᵀ and PV as data-dependent optical products, softmax and masks on the host, GQA heads sharing a K filter."""
    B, H, Hkv, S, D = 2, 4, 2, 6, 8
    spec = ir.AttentionSpec(H, Hkv, D, mask=ir.MaskSpec(causal=True) if mask == "causal" else ir.MaskSpec(input="bool"))
    g = ir.Graph("gqa")
    ins = [g.add_input("q", "float32", (B, H, S, D)), g.add_input("k", "float32", (B, Hkv, S, D)),
           g.add_input("v", "float32", (B, Hkv, S, D))]
    arrays = [RNG.normal(size=v.shape).astype(np.float32) for v in ins]
    if mask == "bool":
        ins.append(g.add_input("mask", "bool", (S, S)))
        arrays.append(RNG.random((S, S)) > 0.3)
    g.set_outputs([g.add1(ir.Attention(spec=spec), ins, name="attn")])
    ref = ir.run_graph(g, arrays)[0]
    (y,), exe = run_optical(g, arrays, aperture=32, **EXACT)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
    row = exe.artifacts["optical_program"].rows[0]
    assert row.where == "optical+host"
    assert row.work.dynamic_loads == 2 * B * Hkv * 2        # (QKᵀ, PV) x (batch, kv head) x two sign passes of K/V
    (y_host,), exe_host = run_optical(g, arrays, aperture=32, attention="host", **EXACT)
    np.testing.assert_allclose(y_host, ref, rtol=1e-5, atol=1e-5)
    assert exe_host.artifacts["optical_program"].rows[0].work.frames == 0


@pytest.mark.slow
def test_example_optical_vit_quick_runs():
    """examples/optical_vit.py --quick: trains both models, runs them in light, prints accuracy and the costs."""
    pytest.importorskip("sklearn", reason="the example's digits data set ships with scikit-learn")
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, str(root / "examples" / "optical_vit.py"), "--quick"], capture_output=True,
                         text=True, timeout=900, check=True).stdout
    assert out.count("agreement") >= 2 and "h100-sxm (estimate)" in out and "optical-4f (simulated)" in out
    agreements = [float(line.split("agreement ")[1].split()[0]) for line in out.splitlines() if "| agreement" in line]
    assert len(agreements) == 2 and min(agreements) > 0.8


def test_cost_model_prices_convolution_as_the_executor_runs_it():
    """cost_models/optical4f_ops prices a Convolution with the frames and refreshes the simulator executes."""
    from attncc.cost_models.analyze import Binder
    from attncc.cost_models.optical4f_ops import _conv_work

    C = 4
    k = np.abs(RNG.normal(size=(1, 1, 3, 3))).astype(np.float32)
    for w in (np.repeat(k, C, axis=0), RNG.normal(size=(C, 1, 3, 3)).astype(np.float32)):   # shared | distinct
        x = RNG.normal(size=(2, C, 12, 12)).astype(np.float32)
        g = ir.Graph("dw")
        ins = [g.add_input("x", "float32", x.shape), g.add_constant(w, "w")]
        g.set_outputs([g.add1(ir.Convolution.make(2, 1, 1, 1, C), ins, name="dw")])
        (_,), exe = run_optical(g, [x], aperture=32, **EXACT)
        cfg_dev = config_from_options(dict(EXACT, aperture=32))[1]
        work = _conv_work(g.topological()[-1], Binder({}), cfg_dev, g)
        ran = exe.artifacts["optical_program"].rows[0].work
        assert (ran.frames, ran.filter_loads) == (work.frames, work.filter_updates)
    assert ran.filter_loads > 1 and work.filter_updates == 2 * C     # distinct signed kernels: two passes each


def test_unmapped_attention_variant_is_a_named_fallback():
    """An attention feature the 4f mapping does not cover runs on the host and is reported as a fallback."""
    from types import SimpleNamespace

    from attncc.backends.optical.executor import placement
    from attncc.compiled import fallback_notes

    cfg, _ = config_from_options({})
    spec = SimpleNamespace(features_list=lambda: [SimpleNamespace(kind="hilo")])
    node = SimpleNamespace(name="attn7", op=SimpleNamespace(op_name="Attention", spec=spec), outputs=[])
    where, note = placement(node, cfg)
    assert where == "host" and "hilo" in note
    assert fallback_notes([note]) == [("attn7", "numpy reference", note)]


def test_camera_noise_statistics_are_poisson_and_gaussian():
    """A flat field at full well: the read intensity's spread is sqrt(FW) electrons (Poisson) or σ_read."""
    E = np.ones((200, 200))
    cfg, _ = config_from_options(dict(quantize=False, read_noise=False, full_well_e=1e4, seed=3))
    I = Simulator(cfg).detect(E) ** 2                       # back in units of the peak intensity
    assert np.mean(I) == pytest.approx(1.0, abs=2e-3) and np.std(I) == pytest.approx(1e-2, rel=0.05)
    cfg, _ = config_from_options(dict(quantize=False, shot_noise=False, full_well_e=1e4, read_noise_e=50, seed=3))
    I = Simulator(cfg).detect(E) ** 2
    assert np.std(I) == pytest.approx(50 / 1e4, rel=0.05)
    cfg, _ = config_from_options(dict(adc_bits=4, noise=False))
    levels = np.unique(np.round(Simulator(cfg).detect(np.linspace(0, 1, 1000)[None]) ** 2 * 15, 6))
    assert len(levels) == 16                                 # a 4-bit ADC reads 16 intensity levels


def test_torch_conv_patch_embedding_and_shared_depthwise_conv_in_light():
    """nn.Conv2d patch embedding (stride 2) and a ConvShareViT-style depthwise conv with one shared kernel."""
    torch.manual_seed(0)

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pe = torch.nn.Conv2d(1, 8, 2, stride=2)
            self.dw = torch.nn.Conv2d(8, 8, 3, groups=8, bias=False)
            with torch.no_grad():
                self.dw.weight.copy_(self.dw.weight[:1].expand(8, 1, 3, 3))

        def forward(self, x):
            return self.dw(torch.relu(self.pe(x)))

    m, x = M().eval(), torch.randn(2, 1, 16, 16)
    compiled = attncc.compile(m, (x,), target="optical", options=dict(EXACT, aperture=64))
    want = m(x).detach().numpy()
    np.testing.assert_allclose(compiled(x).numpy(), want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
    pe, dw = [r for r in compiled.executable.artifacts["optical_program"].rows if r.op == "Convolution"]
    assert pe.work.filter_loads == 8 * 2 and dw.work.filter_loads == 2     # 8 signed kernels | one shared kernel
