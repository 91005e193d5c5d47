"""Time torch SDPA (fp16) on the lent GPU for the cost-model validation cases; writes JSON to $OUT.

Runs on the device machine (torch with CUDA only; no attncc needed there):
    python benchmarks/gpu/h100_sdpa_timings.py
The cases come from `cases()` in validate_h100_cost_model.py's shared list (copied here so the
device needs nothing but torch).
"""
from __future__ import annotations

import json
import os

import torch
import torch.nn.functional as F

# (batch, q_heads, kv_heads, q_len, kv_len, head_dim, causal)
CASES = [
    (4, 32, 32, 4096, 4096, 128, False), (4, 32, 32, 4096, 4096, 128, True), (4, 32, 8, 4096, 4096, 128, True),
    (2, 16, 16, 1024, 1024, 128, False), (8, 16, 16, 2048, 2048, 64, False), (8, 16, 16, 2048, 2048, 64, True),
    (1, 32, 32, 8192, 8192, 128, True), (16, 16, 16, 512, 512, 64, False), (2, 8, 8, 2048, 2048, 64, False),
    (1, 32, 8, 16384, 16384, 128, True), (4, 16, 16, 1024, 1024, 64, True), (2, 32, 32, 2048, 2048, 128, False),
    # decode: one query against a long KV cache
    (16, 32, 8, 1, 8192, 128, False), (64, 32, 32, 1, 4096, 128, False), (8, 32, 8, 1, 32768, 128, False),
    (32, 32, 8, 1, 2048, 128, False), (128, 32, 8, 1, 4096, 128, False), (4, 64, 8, 1, 16384, 128, False),
    (64, 8, 1, 1, 8192, 128, False), (16, 32, 32, 1, 16384, 128, False),
]


def time_case(b, hq, hkv, lq, lk, d, causal, reps=30):
    q = torch.randn(b, hq, lq, d, device="cuda", dtype=torch.float16)
    k = torch.randn(b, hkv, lk, d, device="cuda", dtype=torch.float16)
    v = torch.randn(b, hkv, lk, d, device="cuda", dtype=torch.float16)
    fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal and lq > 1, enable_gqa=hq != hkv)  # noqa: E731
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e) / 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    out = []
    for case in CASES:
        t = time_case(*case)
        out.append({"case": case, "seconds": t})
        print(case, f"{t * 1e6:.1f} us", flush=True)
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "timings": out}
    path = os.path.join(os.environ.get("OUT", "."), "h100_sdpa_timings.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
