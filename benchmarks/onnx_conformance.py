"""ONNX conformance pass rate for the attention family, by family.

Runs every ONNX node test case whose name contains `attention` or `rotary_embedding` through
attncc's ONNX import and the IR reference interpreter (or, with --target, through `attncc.compile`
for that target and its generated code), and prints per family: cases, passed (outputs match),
and — for the `_expanded` twins spelled out in primitives — how many were re-fused into exactly
one Attention op.

    python benchmarks/onnx_conformance.py [--target cpu] [--failures] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

from attncc.conformance import all_cases, run_case, run_case_on_target, summarize


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--failures", action="store_true", help="list every failing or unfused case with its reason")
    ap.add_argument("--json", help="write per-case results to this file")
    ap.add_argument("--target", help="compile each case for this target (e.g. cpu) instead of interpreting it")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.time()
    cases = all_cases()
    results = [run_case_on_target(c, args.target) if args.target else run_case(c) for c in cases]
    summary = summarize(results)
    print(f"{'family':34s} {'cases':>6s} {'passed':>7s} {'rate':>6s} {'fused':>6s}")
    for fam in sorted(summary):
        s = summary[fam]
        rate = s["passed"] / s["total"] if s["total"] else 0.0
        fused = f"{s['fused']}" if "attention" in fam and "rotary" not in fam else "-"
        print(f"{fam:34s} {s['total']:6d} {s['passed']:7d} {rate:6.0%} {fused:>6s}")
    print(f"({len(results)} cases in {time.time() - t0:.1f} s)")
    if args.failures:
        for r in results:
            if r.status != "pass":
                print(f"FAIL {r.name}: {r.detail[:200]}")
            elif r.expanded and r.family.startswith(("attention", "flexattention")) and not r.fused:
                print(f"UNFUSED {r.name}: {r.attention_ops} Attention ops")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r.__dict__ for r in results], f, indent=1)


if __name__ == "__main__":
    main()
