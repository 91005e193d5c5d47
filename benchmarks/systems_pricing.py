"""Pricing full-size models from the meta device: wall time and peak RSS (issue 24: < 60 s and < 4 GB each).

    python benchmarks/systems_pricing.py [--system]    # --system: also the TP8 / EP8 system reports

Each model is priced in a fresh process (its peak RSS is its own): Llama-2-70B (80 layers) and DeepSeek-V3
(61 layers, 256 routed experts, MLA) built on `meta` from transformers' config classes
(benchmarks/systems_models.py), decode of 64 sequences at KV length 4096 on h100. Prints load average
too: this host has 2 cores shared with other work, so wall times vary.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
import attncc
from benchmarks import systems_models as zoo
model, ids = getattr(zoo, {name!r})()
kw = dict(phase="decode", batch=64, seq=4096)
if {system!r}:
    r = attncc.analyze(model, ids, system={system!r}, parallel={parallel!r}, **kw)
    out = {{"step_time_s": r.step_time_s, "kv_bytes_per_token": r.kv_bytes_per_token, "fits": r.fits}}
else:
    r = attncc.analyze(model, ids, hardware="h100", **kw)
    out = {{"time_s": r.total_time_s, "kv_bytes_per_token": r.kv_bytes_per_token, "weights_bytes": r.weights_bytes}}
out["wall_s"] = time.perf_counter() - t0
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps(out))
"""


def run(name: str, system: str = "", parallel: dict | None = None) -> dict:
    code = CHILD.format(root=ROOT, name=name, system=system, parallel=parallel or {})
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    cases = [("llama2_70b", "", None), ("deepseek_v3", "", None)]
    if "--system" in sys.argv:
        cases += [("llama2_70b", "dgx-h100", {"tp": 8}), ("deepseek_v3", "hgx-h800", {"ep": 8})]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for name, system, parallel in cases:
        out = run(name, system, parallel)
        label = f"{name}" + (f" on {system} {parallel}" if system else " on h100 (one device)")
        print(f"{label}: {json.dumps(out)}")


if __name__ == "__main__":
    main()
