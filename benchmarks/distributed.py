"""Collectives and a tensor-parallel block on this machine: measured (torch.distributed gloo, 2 local
processes) vs the systems cost model's prediction for the `host-loopback` system.

    python benchmarks/distributed.py [--quick] [--skip-block]

Prints, per collective and message size: measured median time, predicted time, ratio (predicted / measured);
then the TP=2 Llama-style block step (attncc.compile(..., parallel={"tp": 2})) measured vs the TP=2 report's
step time. Run `attncc calibrate` first so the loopback link and this CPU are measured ones, not defaults.
CPU tensor parallelism on 2 cores is a correctness and calibration exercise, not a speed-up: ratios, not claims.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from attncc.distributed import launch  # noqa: E402

OPS = ("all_reduce", "all_gather", "all_to_all")
FFN = {512: 1376, 1024: 2752}       # the block benchmark's sizes (benchmarks/cpu_block.py, ANCHORS.md)


def _time_collectives(sizes: list[int], reps: int) -> dict:
    """On every rank: median seconds of each collective per message size (nccl-tests sizes: the full buffer)."""
    import torch.distributed as dist

    n = dist.get_world_size()
    out = {}
    for op in OPS:
        for size in sizes:
            elems = max(n, size // 4 // n * n)
            x = torch.ones(elems)
            times = []
            for i in range(reps + 2):
                dist.barrier()
                start = time.perf_counter()
                if op == "all_reduce":
                    dist.all_reduce(x)
                elif op == "all_gather":
                    parts = [torch.empty(elems // n) for _ in range(n)]
                    dist.all_gather(parts, x[: elems // n])
                else:
                    y = torch.empty_like(x)
                    dist.all_to_all_single(y, x)
                if i >= 2:
                    times.append(time.perf_counter() - start)
            out[(op, elems * 4)] = statistics.median(times)
    return out


def _time_tp_block(hidden: int, seq: int, reps: int) -> float:
    import torch.distributed as dist

    import attncc
    from examples.models import LlamaStyleBlock

    torch.manual_seed(0)
    block = LlamaStyleBlock(hidden=hidden, heads=hidden // 64, kv_heads=max(1, hidden // 256), ffn=FFN[hidden],
                            max_seq=seq).eval()
    x = torch.randn(1, seq, hidden)
    cm = attncc.compile(block, (x,), target="cpu", parallel={"tp": dist.get_world_size()})
    cm(x)
    times = []
    for _ in range(reps):
        dist.barrier()
        start = time.perf_counter()
        cm(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _predicted_block(hidden: int, seq: int, tp: int) -> float | None:
    import attncc
    from examples.models import LlamaStyleBlock

    block = LlamaStyleBlock(hidden=hidden, heads=hidden // 64, kv_heads=max(1, hidden // 256), ffn=FFN[hidden],
                            max_seq=seq).eval()
    try:
        report = attncc.analyze(block, (torch.randn(1, seq, hidden),), hardware="host-cpu", system="host-loopback",
                                parallel={"tp": tp}, phase="prefill", seq=seq, batch=1)
    except TypeError as e:   # an attncc without systems pricing
        print(f"  (no TP prediction: {e})")
        return None
    data = report.to_dict()
    totals = data.get("totals", data)
    return totals.get("step_time_s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--skip-block", action="store_true", help="collectives only")
    args = ap.parse_args(argv)
    from attncc.cost_models import collective_time

    sizes = [1 << 12, 1 << 16, 1 << 20, 1 << 24] if args.quick else [1 << k for k in range(10, 27, 2)]
    reps = 5 if args.quick else 20
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    measured = launch(_time_collectives, 2, sizes, reps)
    print(f"{'collective':12} {'bytes':>10} {'measured us':>12} {'predicted us':>13} {'pred/meas':>9}")
    ratios = []
    for (op, nbytes), t in sorted(measured.items()):
        pred = collective_time(op, nbytes, ranks=2, system="host-loopback").time_s
        ratios.append(pred / t)
        print(f"{op:12} {nbytes:10d} {t * 1e6:12.1f} {pred * 1e6:13.1f} {pred / t:9.2f}")
    geo = statistics.geometric_mean(ratios)
    med_err = statistics.median(abs(r - 1) for r in ratios)
    print(f"collectives: geomean predicted/measured {geo:.2f}, median |error| {med_err:.0%} over {len(ratios)} points")
    if not args.skip_block:
        for hidden, seq in ((512, 128),) if args.quick else ((512, 128), (1024, 256)):
            t = launch(_time_tp_block, 2, hidden, seq, reps)
            pred = _predicted_block(hidden, seq, 2)
            line = f"TP=2 block h{hidden}/s{seq}: measured {t * 1e3:.2f} ms"
            if pred:
                line += f", predicted {pred * 1e3:.2f} ms (pred/meas {pred / t:.2f})"
            print(line)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
