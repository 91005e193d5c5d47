"""Convolution on the cpu target: im2col + the packed matmul path vs the direct kernel vs torch (oneDNN).

    python benchmarks/cpu_conv.py

Cases: a ViT-B/16 patch embedding (3 -> 768, 16x16 stride 16 on 224x224), a stride-1 3x3 conv, a depthwise
3x3 (MobileNet / Conformer style), Whisper's first conv1d (80 -> 384, k3) and Wav2Vec2's grouped positional
conv (768, k128, 16 groups). Each algorithm is forced with the compile option conv_algorithm (direct | im2col). Prints median ms over timed calls and GFLOP/s, and the load average (a busy machine skews all).
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from attncc import ir

CASES = [  # name, x shape, weight shape, stride, padding, groups
    ("ViT-B/16 patch embed", (1, 3, 224, 224), (768, 3, 16, 16), 16, 0, 1),
    ("3x3 conv 64->64 56x56", (1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1),
    ("depthwise 3x3 256ch 56x56", (1, 256, 56, 56), (256, 1, 3, 3), 1, 1, 256),
    ("Whisper conv1 80->384 k3 L3000", (1, 80, 3000), (384, 80, 3), 1, 1, 1),
    ("Wav2Vec2 pos conv 768 k128 g16 L200", (1, 768, 200), (768, 48, 128), 1, 64, 16),
]


def _time(fn, reps: int = 10) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts) * 1e3


def main() -> None:
    from attncc.backends.core.cache import CompileCache
    from attncc.backends.cpu.backend import CpuBackend

    torch.set_num_threads(os.cpu_count() or 1)
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rng = np.random.default_rng(0)
    for name, xs, ws, stride, pad, groups in CASES:
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal(ws) * 0.05).astype(np.float32)
        g = ir.Graph("conv")
        xv = g.add_input("x", "float32", xs)
        op = ir.Convolution.make(len(xs) - 2, stride, pad, 1, groups)
        g.set_outputs([g.add1(op, [xv, g.add_constant(w, "w")], name="conv")])
        out = g.outputs[0].shape
        flops = 2.0 * np.prod(out) * ws[1] * np.prod(ws[2:])
        tfn = F.conv2d if len(xs) == 4 else F.conv1d
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        want = tfn(tx, tw, None, stride, pad, 1, groups).numpy()
        row = [f"{name:36s}"]
        t_ms = _time(lambda: tfn(tx, tw, None, stride, pad, 1, groups))
        row.append(f"torch {t_ms:8.2f} ms")
        for algo in ("direct", "im2col"):
            if algo == "im2col" and groups != 1:
                row.append(f"{algo} {'-':>8s}   ")
                continue
            ex = CpuBackend(cache=CompileCache()).lower(g, {"conv_algorithm": algo})
            got = ex([x])[0]
            if ex.notes:
                print("   notes:", ex.notes)
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
            ms = _time(lambda: ex([x]))
            row.append(f"{algo} {ms:8.2f} ms ({flops / ms / 1e6:5.1f} GFLOP/s)")
        print(" | ".join(row))


if __name__ == "__main__":
    main()
