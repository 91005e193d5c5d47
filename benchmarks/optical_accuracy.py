"""Output error of the simulated 4f machine vs fp64, as a function of bit depth and noise (a SIMULATION).

    python benchmarks/optical_accuracy.py              # one layer: a Linear and a shared 3x3 conv
    python benchmarks/optical_accuracy.py --block      # the example Llama block (examples/models.py), end to end

--block: relative error of the block's output vs the float64 interpreter, one seed, all bit depths set together;
noise off, or shot + read noise at the spec's full well (10^4 e-) and read noise (10 e-); plus the spec before
2026-12-07 (signed inputs as a bias, the widest filter tile; rows always scaled) for comparison; then the per-op
error table at the spec. Input: the first 32 tokens of the example input (x[:1, :32]; errors are per token, and the full 2x128 input
costs 8x the simulation time: `--tokens 128 --batch 2` for it).

Two operations of a ConvShareViT-sized layer: a 256-row x 192 -> 192 matrix product (a Linear layer) and a shared
3x3 correlation of 64 16x16 channel maps (ConvShareViT's q/k/v conv). Each cell: relative error ||y - y*|| / ||y*||
and SNR (dB) averaged over 3 seeds; all bit depths (operand, input, filter, ADC) set together; noise = Poisson shot
noise at the given full well plus 10 e- read noise. Catalog aperture (1000 x 1000), signed policies of the spec.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

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


def block_table(tokens: int, batch: int) -> None:
    """Error of the example Llama block at bits x noise (and the earlier spec), vs the float64 interpreter."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    import attncc
    from attncc.backends.optical.backend import OpticalBackend
    from attncc.ir.interpreter import run_graph
    from models import llama_block

    model, (x,) = llama_block()
    x = x[:batch, :tokens].contiguous()
    graph = attncc.compile(model, (x,), target="optical").graph
    f64 = run_graph(graph, [x.numpy()])[0].astype(np.float64)

    def err(**options) -> float:
        t = time.time()
        y = OpticalBackend().lower(graph, options).run([x.numpy()])[0]
        e = float(np.linalg.norm(y - f64) / np.linalg.norm(f64))
        print(f"  {options}: {e:.4f} ({time.time() - t:.0f} s)", file=sys.stderr, flush=True)
        return e

    print(f"SIMULATION: example Llama block (examples/models.py, x {batch}x{tokens}x256), relative error vs the float64 "
          "interpreter\n")
    print("| bits (operand = input = filter = ADC) | noise off | shot + read noise (spec: 10^4 e- full well, 10 e- read) |")
    print("|---|---|---|")
    for bits in (6, 8, 12, 16):
        print(f"| {bits} | {err(bits=bits, noise=False):.4f} | {err(bits=bits):.4f} |", flush=True)
    old = dict(signed_inputs="bias", matmul_n_tile=1000)
    print(f"| 8, spec before 2026-12-07 (signed inputs as a bias, widest filter tile) | {err(bits=8, noise=False, **old):.4f} "
          f"| {err(bits=8, **old):.4f} |")
    from attncc.backends.optical.accuracy import error_table

    print(f"\nspec:\n```\n{error_table(OpticalBackend().lower(graph, {}).run, [x.numpy()])}\n```")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--block", action="store_true", help="the example Llama block end to end instead of one layer")
    ap.add_argument("--tokens", type=int, default=32, help="--block: sequence length (<= 128, the example's)")
    ap.add_argument("--batch", type=int, default=1, help="--block: batch (<= 2, the example's)")
    args = ap.parse_args()
    if args.block:
        return block_table(args.tokens, args.batch)
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
