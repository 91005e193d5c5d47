"""The 4f optical timing/energy model (cost_models/optical4f.py): frame counts by hand, sign and bit-slicing
policies, filter refresh of dynamic vs static filters, the energy identity, reports, and the ConvShareViT
comparison with a GPU (the paper's "up to 3.04x faster than GPU"; our honest figure is printed with -s)."""
import math

import numpy as np
import pytest

from attncc.cost_models import analyze_graph, compare
from attncc.cost_models.optical4f import Optical4fDevice, correlate, matmul, optical_variant, price_work
from attncc.ir import Activation, Attention, AttentionSpec, Binary, Graph, LayerNorm, Linear, Reshape, Transpose
from attncc.ir.ops.attention_features import ConvShare

DEV = Optical4fDevice.from_spec("optical-4f")


def _heads(g, x, B, T, H, D, name):
    return g.add1(Transpose((0, 2, 1, 3)), [g.add1(Reshape((B, T, H, D)), [x])], name=name)


def _merge(g, o, B, T, C, name):
    return g.add1(Reshape((B, T, C)), [g.add1(Transpose((0, 2, 1, 3)), [o])], name=name)


def convshare_model(B=1, image=(16, 16), C=192, H=3, kernel=(3, 3), layers=6, seed=0):
    """ConvShareViT-style stack (attncc.nn.ConvShareAttention per layer): LayerNorm -> conv-share attention (one
    shared valid kernel per q/k/v) -> scalar output scale. Valid padding shrinks the token grid each layer."""
    r = np.random.default_rng(seed)
    g = Graph("convshare")
    h, w = image
    x = g.add_input("x", "float32", (B, h * w, C))
    for li in range(layers):
        n = g.add1(LayerNorm(has_weight=False, has_bias=False), [x], name=f"ln{li}")
        t = _heads(g, n, B, h * w, H, C // H, f"split{li}")
        convs = [g.add_constant(r.standard_normal(kernel).astype(np.float32), f"conv_{c}{li}") for c in "qkv"]
        spec = AttentionSpec(H, H, C // H, kv_source=ConvShare((h, w), kernel))
        o = g.add1(Attention(spec=spec), [t, t, t, *convs], name=f"attn{li}")
        h, w = h - kernel[0] + 1, w - kernel[1] + 1
        m = _merge(g, o, B, h * w, C, f"merge{li}")
        x = g.add1(Binary("mul"), [m, g.add_constant(np.ones((), np.float32), f"scale{li}")], name=f"scale{li}")
    g.set_outputs([x])
    return g


def vit_model(B=1, T=256, C=192, H=3, layers=6, mlp=False, seed=0):
    """Standard ViT blocks of the same width: q/k/v/o Linear projections (+ optional MLP)."""
    r = np.random.default_rng(seed)
    g = Graph("vit")
    x = g.add_input("x", "float32", (B, T, C))

    def W(i, o, nm):
        return g.add_constant((r.standard_normal((i, o)) * 0.02).astype(np.float32), nm)
    for li in range(layers):
        n = g.add1(LayerNorm(has_weight=False, has_bias=False), [x], name=f"ln{li}")
        q, k, v = (_heads(g, g.add1(Linear(), [n, W(C, C, f"w{c}{li}")], name=f"{c}{li}"), B, T, H, C // H, f"{c}h{li}")
                   for c in "qkv")
        o = g.add1(Attention(spec=AttentionSpec(H, H, C // H)), [q, k, v], name=f"attn{li}")
        x = g.add1(Binary("add"), [x, g.add1(Linear(), [_merge(g, o, B, T, C, f"merge{li}"), W(C, C, f"wo{li}")],
                                              name=f"o{li}")], name=f"res{li}")
        if mlp:
            n2 = g.add1(LayerNorm(has_weight=False, has_bias=False), [x], name=f"ln2{li}")
            f1 = g.add1(Activation("gelu"), [g.add1(Linear(), [n2, W(C, 4 * C, f"w1{li}")], name=f"fc1{li}")])
            x = g.add1(Binary("add"), [x, g.add1(Linear(), [f1, W(4 * C, C, f"w2{li}")], name=f"fc2{li}")])
    g.set_outputs([x])
    return g


def linear_graph(weight):
    g = Graph("lin")
    x = g.add_input("x", "float32", (1000, weight.shape[0]))
    g.set_outputs([g.add1(Linear(), [x, g.add_constant(weight, "w")], name="fc")])
    return g


def opt(row):
    return row.cost.details["optical"]


# ---- frame counts by hand ------------------------------------------------------------------------------------
def test_device_from_spec():
    assert DEV.aperture == (1000, 1000)                       # min of DMD 1080x1920, LCoS 1080x1920, camera 1000^2
    assert DEV.input_frame_s == pytest.approx(8 / 23148)      # 8 bit-planes at the DMD binary rate (2.9 kHz)
    assert DEV.filter_refresh_s == pytest.approx(1 / 200)     # LCoS
    assert Optical4fDevice.from_spec(optical_variant(filter="dmd")).filter_refresh_s == pytest.approx(8 / 23148)


def test_conv_frames_by_hand():
    # 16x16 valid planes tile the 1000x1000 aperture 62 x 62 = 3844 at a time; one shared kernel
    w = correlate(DEV, 3844, (16, 16), (3, 3), signed_weights=False, signed_inputs=False)
    assert (w.frames, w.filter_updates) == (1, 1)
    assert w.optical_macs == 3844 * 14 * 14 * 9
    w = correlate(DEV, 3845, (16, 16), (3, 3), signed_weights=False, signed_inputs=False)
    assert w.frames == 2
    # same padding needs a kh-1 guard band: pitch 18 -> 55 x 55 = 3025 planes per frame
    assert correlate(DEV, 3844, (16, 16), (3, 3), padding="same", signed_weights=False, signed_inputs=False).frames == 2
    # 4 distinct filters, weight-stationary: 4 refreshes, each serving its planes
    w = correlate(DEV, 5000, (16, 16), (3, 3), filters=4, signed_weights=False, signed_inputs=False)
    assert (w.frames, w.filter_updates) == (4 * 2, 4)
    # planes larger than the aperture: overlap-save tiles of 996 valid outputs per axis
    big = correlate(DEV, 1, (1500, 1200), (5, 5), signed_weights=False, signed_inputs=False)
    assert big.frames == math.ceil(1496 / 996) * math.ceil(1196 / 996) == 4
    with pytest.raises(ValueError, match="kernel"):
        correlate(DEV, 1, (4, 4), (5, 5))


def test_filter_precision_caps_the_filter_tile():
    """The filter's DC term (the sum of all n_t·k_t weights) sets its full scale while each output reads one row,
    so the filter quantization error of a product grows with n_t / 2^filter_bits: the tile is capped there."""
    from attncc.cost_models.optical4f import filter_n_tile_max

    assert filter_n_tile_max(DEV) == 17                        # 8-bit filter: 0.02·255·√12
    assert filter_n_tile_max(Optical4fDevice.from_spec("optical-4f", filter_bits=16)) > 1000   # no cap in practice
    w = matmul(DEV, 1000, 100, 100, signed_weights=False, signed_inputs=False)
    assert w.tile[1] <= 17 and w.filter_updates == math.ceil(100 / w.tile[1])


def test_matmul_frames_by_hand():
    # a 16-bit filter lifts the precision cap, so the layout arithmetic is the aperture's alone
    DEV = Optical4fDevice.from_spec("optical-4f", filter_bits=16)
    # X 1000x100 @ W 100x100: rows 100 apart vertically, 100 apart horizontally -> 10 x 10 rows per frame
    w = matmul(DEV, 1000, 100, 100, signed_weights=False, signed_inputs=False)
    assert (w.frames, w.filter_updates, w.tile) == (10, 1, (100, 100))
    # k = 1500 > 1000 columns: two k-chunks (partial sums added on the host); n = 250 -> 4 rows per frame
    w = matmul(DEV, 300, 1500, 250, signed_weights=False, signed_inputs=False)
    assert w.tile == (1000, 250) and w.filter_updates == 2 and w.frames == 2 * math.ceil(300 / 4)
    # a narrower tile packs more rows but costs more LCoS refreshes: n_tile=125 -> 2 tiles x 2 chunks, 8 rows/frame
    w = matmul(DEV, 300, 1500, 250, signed_weights=False, signed_inputs=False, n_tile=125)
    assert (w.filter_updates, w.frames) == (4, 4 * math.ceil(300 / 8))
    # dynamic weights: one filter set per batch element (attention's K per (batch, head))
    w = matmul(DEV, 64, 32, 64, batch=6, dynamic=True, signed_weights=False, signed_inputs=False)
    assert (w.filter_updates, w.dynamic_updates, w.frames) == (6, 6, 6)


def test_negative_weights_need_two_passes():
    pos = analyze_graph(linear_graph(np.abs(np.random.default_rng(0).standard_normal((100, 100))).astype(np.float32)),
                        "optical-4f")
    neg = analyze_graph(linear_graph(np.random.default_rng(0).standard_normal((100, 100)).astype(np.float32)), "optical-4f")
    p, n = opt(pos.rows[0]), opt(neg.rows[0])
    assert n["frames"] == 2 * p["frames"] and n["filter_updates"] == 2 * p["filter_updates"]
    assert neg.total_time_s > 1.9 * pos.total_time_s
    # the bias policy keeps one pass and pays on the host instead
    bias = Optical4fDevice.from_spec("optical-4f", signed_weights="bias")
    a, b = matmul(DEV, 1000, 100, 100), matmul(bias, 1000, 100, 100)
    assert a.frames == 2 * b.frames


def test_bit_slicing_policy():
    w8 = matmul(DEV, 1000, 100, 100)
    w16 = matmul(Optical4fDevice.from_spec("optical-4f", operand_bits=16), 1000, 100, 100)
    # 16-bit operands on 8-bit SLMs and an 8-bit ADC: 2 weight slices x 2 input slices x 2 camera exposures
    assert w16.frames == 8 * w8.frames and w16.filter_updates == 2 * w8.filter_updates


# ---- dynamic vs static filters ---------------------------------------------------------------------------------
def test_lcos_refresh_dominates_dynamic_attention_not_static_convshare():
    B, H, D, image = 8, 3, 64, (16, 16)
    T = image[0] * image[1]
    # dynamic: QK^T and PV take K and V as filters, new for every (batch, head)
    dyn = matmul(DEV, T, D, T, B * H, dynamic=True) + matmul(DEV, T, T, D, B * H, dynamic=True, signed_inputs=False)
    # static: ConvShareViT's q/k/v convs over the same B*H*D channel maps, one shared kernel each
    conv = correlate(DEV, B * H * D, image, (3, 3))
    stat = conv + conv + conv
    pd, ps = price_work(DEV, dyn), price_work(DEV, stat)
    assert pd["time_parts_s"]["filter_refresh"] > 0.5 * pd["time_s"]  # LCoS refresh dominates dynamic attention
    assert pd["time_parts_s"]["filter_refresh"] > 10 * ps["time_parts_s"]["filter_refresh"]
    # 2 matmuls x 2 sign passes x their filter tiles (n_t capped by the 8-bit filter's precision) per (batch, head)
    qk, pv = matmul(DEV, T, D, T, dynamic=True), matmul(DEV, T, T, D, dynamic=True, signed_inputs=False)
    assert dyn.filter_updates == 2 * (math.ceil(T / qk.tile[1]) + math.ceil(D / pv.tile[1])) * B * H
    # weight-stationary: static filters do not grow with the batch, dynamic ones do
    stat64 = correlate(DEV, 64 * H * D, image, (3, 3))
    assert stat64.filter_updates == correlate(DEV, B * H * D, image, (3, 3)).filter_updates
    assert matmul(DEV, T, D, T, 64 * H, dynamic=True).filter_updates == 8 * matmul(DEV, T, D, T, B * H, dynamic=True).filter_updates
    # through analyze_graph: the attention row of a conv-share model is refresh-bound on LCoS, less so on a DMD filter
    lcos = analyze_graph(convshare_model(B=2, layers=1), "optical-4f")
    dmd = analyze_graph(convshare_model(B=2, layers=1), optical_variant(filter="dmd"))
    att = next(r for r in lcos.rows if r.kind == "Attention")
    assert att.cost.bound == "filter-refresh"
    assert dmd.total_time_s < lcos.total_time_s / 3


# ---- energy and reports -------------------------------------------------------------------------------------------
def test_energy_is_frames_times_energy_per_frame_plus_refresh_host_io():
    r = analyze_graph(convshare_model(B=2, layers=2), "optical-4f")
    for row in r.rows:
        o, e = opt(row), row.cost.energy_j
        host_j = DEV.host_power_w * o["time_parts_s"]["host"]
        fft_j = (DEV.optical_power_w + DEV.host_power_w) * o["time_parts_s"]["host_fft"]
        io_j = DEV.io_j_per_byte * sum(o["link_bytes"].values())
        expect = o["frames"] * o["energy_per_frame_j"] + o["filter_updates"] * o["energy_per_update_j"] + fft_j + host_j + io_j
        assert e == pytest.approx(expect, rel=1e-9)
        if o["frames"]:
            assert o["energy_per_frame_j"] == pytest.approx(DEV.optical_power_w * o["frame_period_s"] + DEV.adc_j_per_frame)
    assert r.total_energy_j == pytest.approx(sum(x.cost.energy_j for x in r.rows))
    assert r.total_time_s == pytest.approx(sum(x.cost.time_s for x in r.rows))


def test_report_shows_energy_only_for_optical_and_says_simulation():
    g = convshare_model(B=1, layers=1)
    text = analyze_graph(g, "optical-4f").to_text()
    assert "energy" in text.splitlines()[3] and "total energy" in text and "simulation estimate" in text
    assert "measured" not in text.lower().replace("not a measurement", "")
    gpu = analyze_graph(g, "h100")
    assert gpu.total_energy_j is None and all(r.energy_j is None for r in gpu.rows)
    assert "energy" not in gpu.to_text() and gpu.to_dict()["totals"]["energy_j"] is None
    assert "energy (simulated)" in compare([analyze_graph(g, "optical-4f"), gpu]) and "energy" not in compare([gpu])


# ---- ConvShareViT vs GPU --------------------------------------------------------------------------------------------
def _frames_only(report):
    """Paper-style idealisation: frames at the spec's frame period; filter refresh, host FFT, host ops and I/O free."""
    return sum(opt(r)["frames"] * max(DEV.input_frame_s, DEV.camera_frame_s) for r in report.rows)


def test_convsharevit_vs_gpu_trend_and_honest_ratio():
    PAPER = 3.04
    ratios = {}
    for name, build in (("convshare", convshare_model), ("vit", vit_model)):
        g = build(B=1)
        gpu = analyze_graph(g, "h100").total_time_s
        lcos, dmd = analyze_graph(g, "optical-4f"), analyze_graph(g, optical_variant(filter="dmd"))
        frames = sum(opt(r)["frames"] for r in lcos.rows)
        ratios[name] = {"lcos": gpu / lcos.total_time_s, "dmd": gpu / dmd.total_time_s, "frames_only": gpu / _frames_only(lcos),
                        "frame_rate_for_paper_hz": PAPER * frames / gpu}
        print(f"\n{name}: H100 {gpu * 1e3:.3f} ms; GPU-time / optical-time: LCoS {ratios[name]['lcos']:.2e}, "
              f"DMD filter {ratios[name]['dmd']:.2e}, frames only {ratios[name]['frames_only']:.2e}; "
              f"{frames} frames -> {PAPER}x needs {ratios[name]['frame_rate_for_paper_hz'] / 1e6:.2f} MHz frames (spec "
              f"{1 / DEV.input_frame_s:.0f} Hz) with every refresh and host cost removed")
    cs, vit = ratios["convshare"], ratios["vit"]
    # every removed cost helps, in this order: LCoS refresh -> DMD refresh -> frames only
    assert cs["lcos"] < cs["dmd"] < cs["frames_only"]
    # the ConvShareViT trend: shared static kernels suit the 4f system better than Linear projections (1.8x with
    # signed inputs in two passes, the spec since 2026-12-07; more with the earlier bias encoding of inputs)
    assert cs["frames_only"] > 1.5 * vit["frames_only"]
    # the honest figure: with this spec the GPU is faster; the paper's 3.04x needs MHz-class frame rates
    assert cs["lcos"] < 1 and cs["frames_only"] < PAPER
    assert cs["frame_rate_for_paper_hz"] > 100 / DEV.input_frame_s
