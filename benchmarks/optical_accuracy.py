"""Output error of the simulated 4f machine vs fp64, as a function of bit depth and noise (a SIMULATION).

    python benchmarks/optical_accuracy.py

Two operations of a ConvShareViT-sized layer: a 256-row x 192 -> 192 matrix product (a Linear layer) and a shared
3x3 correlation of 64 16x16 channel maps (ConvShareViT's q/k/v conv). Each cell: relative error ||y - y*|| / ||y*||
and SNR (dB) averaged over 3 seeds; all bit depths (operand, input, filter, ADC) set together; noise = Poisson shot
noise at the given full well plus 10 e- read noise. Catalog aperture (1000 x 1000), signed policies of the spec.
"""
from __future__ import annotations

import numpy as np

from attncc.backends.optical import mapping
from attncc.backends.optical.config import config_from_options
from attncc.backends.optical.physics import Counters, Simulator
from attncc.cost_models import optical4f


def run(op: str, x: np.ndarray, w: np.ndarray, **options) -> tuple[float, float]:
    errs = []
    for seed in range(3):
        cfg, dev = config_from_options(dict(options, seed=seed))
        sim = Simulator(cfg)
        if op == "matmul":
            ref = x @ w
            y = mapping.matmul(sim, x, w, optical4f.matmul(dev, *x.shape, w.shape[1]).tile, Counters())
        else:
            ref = mapping._valid_corr(x, w)
            y = mapping.correlate_planes(sim, x, w, Counters())
        errs.append(np.linalg.norm(y - ref) / np.linalg.norm(ref))
    e = float(np.mean(errs))
    return e, float(-20 * np.log10(e))


def main() -> None:
    r = np.random.default_rng(0)
    cases = {"Linear 256x192 @ 192x192": ("matmul", r.standard_normal((256, 192)), r.standard_normal((192, 192)) / 14),
             "shared 3x3 conv, 64 maps 16x16": ("corr", r.standard_normal((64, 16, 16)), r.standard_normal((3, 3)))}
    noises = [("off", dict(noise=False)), ("FW 1e5 e-", dict(full_well_e=1e5)), ("FW 1e4 e- (spec)", dict()),
              ("FW 1e3 e-", dict(full_well_e=1e3))]
    print("SIMULATION: relative error (SNR dB) vs fp64; rows: bits (operand = input = filter = ADC); columns: noise\n")
    for name, (op, x, w) in cases.items():
        print(f"## {name}")
        print("| bits | " + " | ".join(n for n, _ in noises) + " |")
        print("|---|" + "---|" * len(noises))
        for bits in (4, 6, 8, 10, 12, 16):
            cells = [run(op, x, w, bits=bits, **opts) for _, opts in noises]
            print(f"| {bits} | " + " | ".join(f"{e:.2e} ({s:.1f})" for e, s in cells) + " |")
        print()


if __name__ == "__main__":
    main()
