"""Fit the message-size efficiency of the collective model to the ANCHORS.md collective table (only it).

    python benchmarks/fit_collectives.py   # prints the fitted numbers shipped in cost_models/specs/systems/links.json

Model (cost_models/collectives.py): time = latency(n) + bytes * factor(op, n) / (line_rate * eff(bytes)),
eff(s) = max / (1 + (half / s) ** exponent). Fitted points (all others are held out and only checked):
- NVLink 4 all-reduce (NVLS): max, half, exponent to 8xH200 1 MB 52.96, 1 GB 467.58, 8 GB 479.98 GB/s busbw
  (16 MB 240.41 held out).
- NVLink 4 other collectives (ring): max to 8xH100 all-gather ~360 GB/s busbw at 1 GB (half, exponent shared).
- NVLink 3 (A100): max, half to 8xA100 all-reduce 1 MB 36.22, 8 GB 231.58 (1 GB 228.10 held out), exponent shared.
- InfiniBand NDR: max to 46-49 GB/s of 50 (midpoint 47.5); half to DeepEP low-latency dispatch EP256
  (128 tokens x 8 experts x 7168 B FP8 in 194 us; combine 360 us held out), exponent shared.
Needs scipy (not an attncc dependency).
"""
from __future__ import annotations

import math

from scipy.optimize import least_squares

MB = 2 ** 20
BASE, NVL, NET = 3.6e-6, 0.47e-6, 2.7e-6   # NCCL src/graph/tuning.cc: Ring/LL baseLat, hwLat NVLink, NET


def busbw(s, n, rate, emax, half, p, factor, steps, step_lat):
    eff = emax / (1 + (half / s) ** p)
    t = BASE + steps * step_lat + s * factor / (rate * eff)
    return s * factor / t / 1e9


def main() -> None:
    ar = lambda n: (2 * (n - 1) / n, 2 * (n - 1))  # noqa: E731
    h200 = {1 * MB: 52.96, 1024 * MB: 467.58, 8192 * MB: 479.98}
    f, st = ar(8)
    fit = least_squares(lambda x: [math.log(busbw(s, 8, 450e9, x[0], math.exp(x[1]), x[2], f, st, NVL) / v)
                                   for s, v in h200.items()], [1.0, math.log(8 * MB), 0.8]).x
    emax, half, p = fit[0], math.exp(fit[1]), fit[2]
    print(f"nvlink4 all_reduce: max {emax:.4f} half {half:.0f} exponent {p:.4f}; "
          f"16 MB held out: {busbw(16 * MB, 8, 450e9, emax, half, p, f, st, NVL):.1f} vs 240.41")
    ag = least_squares(lambda x: [math.log(busbw(1024 * MB, 8, 450e9, x[0], half, p, 7 / 8, 7, NVL) / 360)], [0.8]).x[0]
    print(f"nvlink4 ring collectives: max {ag:.4f}")
    a100 = {1 * MB: 36.22, 8192 * MB: 231.58}
    fa = least_squares(lambda x: [math.log(busbw(s, 8, 300e9, x[0], math.exp(x[1]), p, f, st, NVL) / v)
                                  for s, v in a100.items()], [0.8, math.log(8 * MB)]).x
    print(f"nvlink3: max {fa[0]:.4f} half {math.exp(fa[1]):.0f}; 1 GB held out: "
          f"{busbw(1024 * MB, 8, 300e9, fa[0], math.exp(fa[1]), p, f, st, NVL):.1f} vs 228.10")
    ib_max = 47.5 / 50
    disp = 128 * 8 * 7168   # bytes each rank sends in DeepEP's low-latency dispatch (FP8)
    n = 256
    # all-to-all: one concurrent exchange step; busbw = algbw x (n-1)/n
    ib_half = least_squares(lambda x: [math.log((BASE + NET + disp * (n - 1) / n / (50e9 * ib_max / (1 + (math.exp(x[0]) / disp) ** p))) / 194e-6)],
                            [math.log(MB)]).x[0]
    ib_half = math.exp(ib_half)
    comb = 2 * disp
    t = BASE + NET + comb * (n - 1) / n / (50e9 * ib_max / (1 + (ib_half / comb) ** p))
    print(f"ib-ndr: max {ib_max:.4f} half {ib_half:.0f}; DeepEP combine EP256 held out: {t * 1e6:.0f} us vs 360")


if __name__ == "__main__":
    main()
