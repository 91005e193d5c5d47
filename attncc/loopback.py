"""Measure this host as a 2-rank system: gloo all-reduce between 2 local processes (torch.distributed).

`measure_loopback_allreduce()` times all-reduces of a few sizes and fits the latency + bytes/bandwidth line
of the collective model to them (busbw factor 2(n-1)/n = 1 for 2 ranks); `save_loopback_link()` writes the
result as the `loopback-gloo` link in the attncc cache, which `attncc.cost_models.get_system("host-loopback")`
then uses. Called by `attncc calibrate --loopback`.
"""
from __future__ import annotations

import datetime
import json
import os
from typing import Any

SIZES = (1 << 12, 1 << 16, 1 << 20, 1 << 22, 1 << 24)   # bytes of float32 per all-reduce


def _time_allreduces(sizes: tuple[int, ...], reps: int) -> dict[int, float]:
    """On every rank of a 2-rank group: best-of-`reps` seconds of a gloo all-reduce of each size."""
    import time

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    best = {}
    for size in sizes:
        x = torch.ones(size // 4, dtype=torch.float32)
        for _ in range(2):  # warm up the connection and buffers
            dist.all_reduce(x)
        times = []
        for _ in range(reps):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - t0)
        best[size] = min(times)
    return best


def measure_loopback_allreduce(sizes: tuple[int, ...] = SIZES, reps: int = 10) -> dict[str, Any]:
    """Best-of-`reps` time of a gloo all-reduce of each size between 2 local processes, and the fitted link:
    {"times_s": {bytes: s}, "latency_s", "bandwidth_bytes_per_s", "date"}."""
    from .distributed import launch

    times = {int(k): float(v) for k, v in launch(_time_allreduces, 2, tuple(sizes), reps).items()}
    small, large = min(times), sorted(times)[-2:]
    # time = latency + bytes * 1.0 / bandwidth (2 ranks: the all-reduce bus factor 2(n-1)/n is 1): the latency is
    # the smallest message's time, the bandwidth the slope between the two largest
    slope = (times[large[1]] - times[large[0]]) / (large[1] - large[0])
    return {"times_s": times, "latency_s": times[small],
            "bandwidth_bytes_per_s": 1.0 / slope if slope > 0 else large[1] / times[large[1]],
            "load": os.getloadavg()[0], "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}


def save_loopback_link(measured: dict[str, Any]) -> str:
    """Write the measured link into the attncc cache (`links.json`, key loopback-gloo); returns the path."""
    from .cost_models.hardware import cache_dir

    path = cache_dir() / "links.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    source = (f"measured by attncc calibrate --loopback {measured['date']}: gloo all-reduce between 2 local processes, "
              f"best of 10, sizes {sorted(measured['times_s'])} B, 1-min load {measured.get('load', 0):.2f}; latency = the "
              "smallest message's time, bandwidth = the slope between the two largest")
    data["loopback-gloo"] = {
        "description": "this host: 2 local processes, torch.distributed gloo over TCP loopback",
        "bandwidth_bytes_per_s": measured["bandwidth_bytes_per_s"], "bandwidth_source": source,
        "latency": {"base_s": measured["latency_s"], "per_step_s": 0.0, "source": source},
        "efficiency": {"default": {"max": 1.0, "half_bytes": 0, "exponent": 1.0,
                                   "fit": "none: the measured line already holds the achieved rate"}},
        "times_s": {str(k): v for k, v in measured["times_s"].items()},
    }
    path.write_text(json.dumps(data, indent=2))
    return str(path)
