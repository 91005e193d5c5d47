"""Compare the cost model's h100-sxm attention predictions with torch SDPA measured on an H100.

The timings come from `h100_sdpa_timings.py` run on the lent H100 (results/h100_sdpa_timings.json,
torch's fp16 SDPA: cuDNN / FlashAttention-2 kernels). attncc has no CUDA backend yet, so this checks
the model against the best kernels available: a well-calibrated roofline should track them.
    python benchmarks/gpu/validate_h100_cost_model.py [results.json]
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from attncc.cost_models import attention_cost, get_hardware
from attncc.cost_models.fit import spearman
from attncc.ir import AttentionSpec, MaskSpec


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    hw = get_hardware("h100-sxm")
    print(f"measured on {data['device']} with torch {data['torch']} (SDPA fp16), predicted for {hw.name}")
    print(f"{'case (B, Hq, Hkv, Lq, Lk, D, causal)':<42} {'measured':>10} {'predicted':>10} {'error':>8}  bound")
    measured, predicted = [], []
    for row in data["timings"]:
        b, hq, hkv, lq, lk, d, causal = row["case"]
        spec = AttentionSpec(hq, hkv, d, mask=MaskSpec(causal=causal and lq > 1, alignment="bottom_right"))
        cost = attention_cost(spec, b, lq, lk, "float16", None, hw)
        measured.append(row["seconds"])
        predicted.append(cost.time_s)
        err = (cost.time_s - row["seconds"]) / row["seconds"]
        print(f"{str(tuple(row['case'])):<42} {row['seconds'] * 1e6:>8.1f}us {cost.time_s * 1e6:>8.1f}us {100 * err:>+7.1f}%  {cost.bound}")
    m, p = np.array(measured), np.array(predicted)
    errors = np.abs(p - m) / m
    prefill = np.array([r["case"][3] > 1 for r in data["timings"]])
    print(f"\nmedian abs error {100 * np.median(errors):.1f}% (prefill {100 * np.median(errors[prefill]):.1f}%, "
          f"decode {100 * np.median(errors[~prefill]):.1f}%), Spearman {spearman(p, m):.3f}, n={len(m)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results", "h100_sdpa_timings.json"))
