"""Which device parameters ConvShareViT's "up to 3.04x faster than GPU" depends on, and where break-even lies.

    python benchmarks/optical_sweep.py                 # ViT-Tiny-width ConvShareViT (16x16 tokens, C=192, 6 layers)
    python benchmarks/optical_sweep.py --batch 8 --layers 12

Prices a ConvShareViT stack (attncc.nn.ConvShareAttention per layer, as an IR graph) and the matching standard
ViT on `h100-sxm` and on the `optical-4f` catalog entry (cost_models/optical4f.py), then varies ONE optical
parameter at a time (the rest at the catalog's cited values) and reports the GPU/optical time ratio and the
value at which it crosses 1x (break-even) and 3.04x (the paper's claim). Every optical figure is a SIMULATION
estimate of the cost model; the GPU figure a roofline estimate. Nothing here is measured.
"""
from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import numpy as np

from attncc.cost_models import analyze_graph, get_hardware
from attncc.ir import Graph
from attncc.ir.ops import (Attention, AttentionSpec, Binary, LayerNorm, Linear, Reshape, Transpose)
from attncc.ir.ops.attention_features import ConvShare

PAPER = 3.04


def _heads(g, x, B, T, H, D, name):
    return g.add1(Transpose((0, 2, 1, 3)), [g.add1(Reshape((B, T, H, D)), [x])], name=name)


def _merge(g, o, B, T, C, name):
    return g.add1(Reshape((B, T, C)), [g.add1(Transpose((0, 2, 1, 3)), [o])], name=name)


def convshare_vit(B: int, image=(16, 16), C=192, H=3, kernel=(3, 3), layers=6) -> Graph:
    """LayerNorm -> ConvShare attention (one shared valid kernel per q/k/v, as attncc.nn.ConvShareAttention)."""
    r = np.random.default_rng(0)
    g = Graph("convsharevit")
    h, w = image
    x = g.add_input("x", "float32", (B, h * w, C))
    for li in range(layers):
        t = _heads(g, g.add1(LayerNorm(has_weight=False, has_bias=False), [x], name=f"ln{li}"), B, h * w, H, C // H, f"s{li}")
        convs = [g.add_constant(r.standard_normal(kernel).astype(np.float32), f"conv_{c}{li}") for c in "qkv"]
        o = g.add1(Attention(spec=AttentionSpec(H, H, C // H, kv_source=ConvShare((h, w), kernel))), [t, t, t, *convs],
                   name=f"attn{li}")
        h, w = h - kernel[0] + 1, w - kernel[1] + 1
        x = g.add1(Binary("mul"), [_merge(g, o, B, h * w, C, f"m{li}"), g.add_constant(np.ones((), np.float32), f"sc{li}")])
    g.set_outputs([x])
    return g


def vit(B: int, T=256, C=192, H=3, layers=6) -> Graph:
    """Standard ViT attention blocks of the same width (q/k/v/o Linear projections)."""
    r = np.random.default_rng(0)
    g = Graph("vit")
    x = g.add_input("x", "float32", (B, T, C))
    for li in range(layers):
        n = g.add1(LayerNorm(has_weight=False, has_bias=False), [x], name=f"ln{li}")
        q, k, v = (_heads(g, g.add1(Linear(), [n, g.add_constant((r.standard_normal((C, C)) * .02).astype(np.float32))]),
                          B, T, H, C // H, f"{c}{li}") for c in "qkv")
        o = g.add1(Attention(spec=AttentionSpec(H, H, C // H)), [q, k, v], name=f"attn{li}")
        x = g.add1(Linear(), [_merge(g, o, B, T, C, f"m{li}"), g.add_constant((r.standard_normal((C, C)) * .02).astype(np.float32))])
    g.set_outputs([x])
    return g


def variant(changes: dict) -> object:
    """The optical-4f spec with nested `optical` fields changed ({"camera.frame_rate_hz": 1e5, ...})."""
    hw = get_hardware("optical-4f")
    o = copy.deepcopy(hw.extra["optical"])
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        d = o
        for p in parents:
            d = d[p]
        d[leaf] = value
    return replace(hw, extra={**hw.extra, "optical": o})


def scale_frames(f: float) -> dict:
    """Input DMD binary rate and camera rate both x f (the frame period / f)."""
    o = get_hardware("optical-4f").extra["optical"]
    return {"input_slm.binary_frame_rate_hz": o["input_slm"]["binary_frame_rate_hz"] * f,
            "camera.frame_rate_hz": o["camera"]["frame_rate_hz"] * f}


def ideal() -> dict:
    """Filter refresh, host FFT, host ops and links made free: only frames cost time (the paper-style view)."""
    return {"filter_slms.lcos.frame_rate_hz": 1e15, "host.flops": 1e21, "host.bytes_per_s": 1e21,
            "io.host_to_slm_bytes_per_s": 1e21, "io.camera_to_host_bytes_per_s": 1e21}


SWEEPS = {  # name -> (values, changes(value)); break-even is searched between the first and 1000x the last value
    "filter refresh rate (Hz)": ([60, 200, 2.9e3, 1e4, 1e5, 1e6, 1e7], lambda v: {"filter_slms.lcos.frame_rate_hz": v}),
    "frame rate x spec (input DMD + camera)": ([1, 3, 10, 30, 100, 300, 1000], scale_frames),
    "frame rate and filter refresh x spec": ([1, 10, 100, 1000, 1e4], lambda v: {
        **scale_frames(v), "filter_slms.lcos.frame_rate_hz": 200 * v}),
    "host FLOP/s (FFT of dynamic filters, softmax, norms)": ([1.84e11, 1e12, 1e13, 1e14, 1e15],
                                                             lambda v: {"host.flops": v, "host.bytes_per_s": v / 8.4}),
    "link bandwidth x spec (host<->SLM, camera->host)": ([1, 10, 100, 1000], lambda v: {
        "io.host_to_slm_bytes_per_s": 7.88e9 * v, "io.camera_to_host_bytes_per_s": 5e9 * v}),
    "frame rate x spec, with refresh/host/links free": ([1, 10, 100, 1000, 1e4], lambda v: {**ideal(), **scale_frames(v)}),
}


def ratio(graph: Graph, gpu_s: float, changes: dict) -> tuple[float, dict]:
    rep = analyze_graph(graph, variant(changes))
    parts: dict[str, float] = {}
    for row in rep.rows:
        for k, v in row.cost.details.get("optical", {}).get("time_parts_s", {}).items():
            parts[k] = parts.get(k, 0.0) + v
    return gpu_s / rep.total_time_s, parts


def crossing(graph: Graph, gpu_s: float, fn, lo: float, hi: float, target: float) -> float | None:
    """The parameter value in [lo, hi] where the ratio reaches `target` (bisection in log space; the ratio
    grows with every swept parameter), or None when it stays below."""
    if ratio(graph, gpu_s, fn(hi))[0] < target:
        return None
    if ratio(graph, gpu_s, fn(lo))[0] >= target:
        return lo
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if ratio(graph, gpu_s, fn(mid))[0] < target else (lo, mid)
    return hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--layers", type=int, default=6)
    args = ap.parse_args()
    print("All optical figures: SIMULATION (cost_models/optical4f.py + specs/optical-4f.json); GPU: h100-sxm roofline "
          "estimate. Ratio = GPU time / optical time (> 1: the optical system is faster).\n")
    for name, build in (("ConvShareViT", convshare_vit), ("ViT (Linear q/k/v/o)", vit)):
        g = build(args.batch, layers=args.layers)
        gpu = analyze_graph(g, "h100-sxm").total_time_s
        base, parts = ratio(g, gpu, {})
        total = sum(parts.values())
        print(f"## {name}, batch {args.batch}, {args.layers} layers: H100 {gpu * 1e6:.1f} us; optical at spec "
              f"{gpu / base * 1e3:.2f} ms -> ratio {base:.2e}")
        print("   optical time by part: " + ", ".join(f"{k} {v / total:.0%}" for k, v in parts.items() if v))
        for sweep, (values, fn) in SWEEPS.items():
            rs = [ratio(g, gpu, fn(v))[0] for v in values]
            hi = values[-1] * 1000
            cross = {t: crossing(g, gpu, fn, values[0], hi, t) for t in (1.0, PAPER)}
            top, top_parts = ratio(g, gpu, fn(hi))
            limit = max(top_parts, key=top_parts.get)
            print(f"   {sweep}:")
            print("     " + "  ".join(f"{v:.3g}: {r:.2e}" for v, r in zip(values, rs)))
            print("     " + "; ".join(f"{t}x at {c:.3g}" if c is not None else
                                      f"{t}x never up to {hi:.3g} (ratio {top:.2e} there, bound by {limit})"
                                      for t, c in cross.items()))
        print()
    for B in (1, 8, 64):
        g = convshare_vit(B, layers=args.layers)
        gpu = analyze_graph(g, "h100-sxm").total_time_s
        print(f"ConvShareViT batch {B}: ratio at spec {ratio(g, gpu, {})[0]:.2e}; frames only (ideal) "
              f"{ratio(g, gpu, ideal())[0]:.2e}")


if __name__ == "__main__":
    main()
