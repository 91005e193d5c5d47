"""A tiny ViT and its ConvShareViT counterpart on scikit-learn's bundled digits, executed on the simulated 4f
optical accelerator (target="optical"), with accuracy vs fp32 and the cost report next to an H100's.

    python examples/optical_vit.py            # ~1 min on 2 cores: trains both models, runs them in light
    python examples/optical_vit.py --quick    # fewer test images and no bit sweep

Every optical figure printed is a SIMULATION (backends/optical: quantization, noise and tiling simulated per
frame; cost_models/optical4f.py: time and energy from datasheet/literature figures in
cost_models/specs/optical-4f.json). The GPU and CPU columns are roofline estimates, not measurements.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

import attncc
from attncc.cost_models import compare
from attncc.nn._base import merge_heads, split_heads
from attncc.nn.convshare import ConvShareAttention
from attncc.nn.functional import run_variant

PATCH, GRID, C, HEADS = 2, 4, 32, 2       # 8x8 digits -> 4x4 grid of 2x2 patches, width 32


def load_digits():
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise SystemExit("examples/optical_vit.py needs scikit-learn for its bundled digits data set "
                         "(pip install scikit-learn; it is in attncc's test extras)") from None
    d = sk_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    cut = int(0.8 * len(y))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def patches(img: torch.Tensor) -> torch.Tensor:
    """(B, 8, 8) -> (B, 16, 4) row-major 2x2 patches (the patch embedding is then a Linear, i.e. a stride-2 conv)."""
    B = img.shape[0]
    return img.reshape(B, GRID, PATCH, GRID, PATCH).permute(0, 1, 3, 2, 4).reshape(B, GRID * GRID, PATCH * PATCH)


class TinyViT(nn.Module):
    """Patch embedding, one pre-norm transformer block (MHA + MLP), mean pooling, linear head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(PATCH * PATCH, C)
        self.pos = nn.Parameter(torch.randn(1, GRID * GRID, C) * 0.1)
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn = nn.MultiheadAttention(C, HEADS, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
        self.head = nn.Linear(C, 10)

    def forward(self, img):
        h = self.embed(patches(img)) + self.pos
        n = self.ln1(h)
        h = h + self.attn(n, n, n, need_weights=False)[0]
        h = h + self.mlp(self.ln2(h))
        return self.head(h.mean(1))


class TinyConvShareViT(nn.Module):
    """The ConvShareViT counterpart: q/k/v are one shared 2x2 depthwise conv each (valid: 4x4 -> 3x3 tokens);
    the MLP keeps Linear layers (optical matrix products), as does the patch embedding."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(PATCH * PATCH, C)
        self.pos = nn.Parameter(torch.randn(1, GRID * GRID, C) * 0.1)
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.attn = ConvShareAttention(C, HEADS, (GRID, GRID), 2)
        self.mlp = nn.Sequential(nn.Linear(C, 2 * C), nn.GELU(), nn.Linear(2 * C, C))
        self.head = nn.Linear(C, 10)

    def attend(self, x):
        """The attention layer; in training its differentiable torch math (the compiled graph uses the attncc op)."""
        if not self.training:
            return self.attn(x)
        a, t = self.attn, split_heads(x, HEADS)
        o = run_variant(a.spec, dict(query=t, key=t, value=t, conv_q=a.conv_q, conv_k=a.conv_k, conv_v=a.conv_v))
        return a.out_scale * merge_heads(o)

    def forward(self, img):
        h = self.embed(patches(img)) + self.pos
        a = self.attend(self.ln1(h))                     # (B, 9, C): valid shared convs shrink the grid
        a = a + self.mlp(self.ln2(a))
        return self.head(a.mean(1))


def train(model: nn.Module, x, y, epochs: int = 15, batch: int = 64) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(epochs):
        for i in torch.randperm(len(y)).split(batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
    return model.eval()


def snr_db(y: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref ** 2) / max(np.sum((y - ref) ** 2), 1e-300)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="120 test images, no bit-depth sweep")
    args = ap.parse_args()
    torch.set_num_threads(1)   # a model this small trains fastest on one thread (no oversubscription)
    (xtr, ytr), (xte, yte) = load_digits()
    if args.quick:
        xte, yte = xte[:120], yte[:120]
    print(f"digits (scikit-learn bundled): {len(ytr)} train / {len(yte)} test images, 8x8\n")
    rows, reports = [], []
    for name, cls in (("tiny ViT", TinyViT), ("tiny ConvShareViT", TinyConvShareViT)):
        t0 = time.perf_counter()
        model = train(cls(), xtr, ytr)
        with torch.no_grad():
            ref = model(xte).numpy()
        train_s = time.perf_counter() - t0
        cm = attncc.compile(model, (xte,), target="optical")           # catalog device: 8-bit, noise on
        t0 = time.perf_counter()
        got = cm(xte).numpy()
        sim_s = time.perf_counter() - t0
        fp32_acc = float((ref.argmax(1) == yte.numpy()).mean())
        acc = float((got.argmax(1) == yte.numpy()).mean())
        agree = float((got.argmax(1) == ref.argmax(1)).mean())
        rel = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
        print(f"{name}: trained in {train_s:.1f} s; optical simulation of {len(yte)} images took {sim_s:.1f} s (host wall time)")
        print(f"  top-1 fp32 {fp32_acc:.3f} | optical (simulated, spec bits + noise) {acc:.3f} | agreement {agree:.3f} | "
              f"logit rel. error {rel:.3g}, SNR {snr_db(got, ref):.1f} dB")
        if not args.quick:
            for opts in (dict(noise=False), dict(bits=6), dict(bits=4), dict(bits=16, noise=False)):
                out = attncc.compile(model, (xte,), target="optical", options=opts)(xte).numpy()
                print(f"    {str(opts):34} agreement {float((out.argmax(1) == ref.argmax(1)).mean()):.3f}  "
                      f"rel. error {np.linalg.norm(out - ref) / np.linalg.norm(ref):.3g}  SNR {snr_db(out, ref):.1f} dB")
        prog = cm.executable.artifacts["optical_program"]
        print("  " + prog.table().replace("\n", "\n  "))
        t = prog.totals()
        rows.append((name, t))
        gpu = attncc.analyze(model, (xte,), hardware="h100-sxm")
        cpu = attncc.analyze(model, (xte,), hardware="host-cpu")
        reports.append((name, cm.report, gpu, cpu))
        print()
    print(f"cost per batch of {len(yte)} images (optical: SIMULATION from cost_models/optical4f.py and the catalog; "
          "GPU/CPU: roofline estimates)")
    for name, opt, gpu, cpu in reports:
        print(f"\n{name}")
        print(compare([(f"optical-4f (simulated)", opt), ("h100-sxm (estimate)", gpu), ("host-cpu (estimate)", cpu)]))
        frames = sum(r.cost.details.get("optical", {}).get("frames", 0) for r in opt.rows)
        refresh = sum(r.cost.details.get("optical", {}).get("filter_updates", 0) for r in opt.rows)
        io = sum(sum(r.cost.details.get("optical", {}).get("link_bytes", {}).values()) for r in opt.rows)
        print(f"  cost model (simulated): {frames} frames, {refresh} filter refreshes, {io / 1e6:.2f} MB over the links; "
              f"{opt.total_time_s * 1e3:.2f} ms, {opt.total_energy_j:.3g} J per batch")
        t = dict(rows)[name]
        print(f"  executed program (simulated): {int(t['frames'])} camera exposures, {int(t['filter_refreshes'])} filter "
              f"refreshes ({int(t['dynamic_refreshes'])} data-dependent), "
              f"{(t['bytes_to_slm'] + t['bytes_from_camera'] + t['bytes_to_filter']) / 1e6:.2f} MB over the links")
    print("\nassumptions: catalog device optical-4f (DLP9500-class DMD input, LCoS phase filter at 200 Hz, 1000x1000 "
          "aperture, 10 kHz camera with 8-bit ADC); operands 8-bit; signed weights two passes, signed inputs a bias "
          "corrected on the host; exposure set per frame so the brightest pixel fills the full well; static filter "
          "spectra precomputed at load (not priced), data-dependent ones (QK^T, PV) a host FFT each; softmax, norms, "
          "GELU, bias adds on the host (numpy kernels of the IR interpreter). The executed program counts camera "
          "exposures (one per bit-plane on a binary DMD); the cost model prices 8-bit frames. See docs/optical.md.")


if __name__ == "__main__":
    main()
