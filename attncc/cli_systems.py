"""CLI for systems of many devices: `attncc report --system`, `attncc plan`, `attncc calibrate --loopback`."""
from __future__ import annotations

import argparse
import re


class PlanInputError(ValueError):
    """A bad --nodes / --tpot-slo value; the message says the expected form."""


def parse_nodes(text: str) -> range:
    """"1..18" or "4" -> a range of node counts."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:\.\.\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(2)) < int(m.group(1))):
        raise PlanInputError(f"--nodes {text!r}: expected N or A..B with 1 <= A <= B, e.g. 1..18")
    return range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1)


def parse_seconds(text: str) -> float:
    """"50ms", "0.05s", "800us" -> seconds."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|us|s)?\s*", text)
    if not m:
        raise PlanInputError(f"--tpot-slo {text!r}: expected a time like 50ms, 0.05s or 800us")
    return float(m.group(1)) * {"ms": 1e-3, "us": 1e-6, "s": 1.0, None: 1.0}[m.group(2)]


def add_system_options(parser: argparse.ArgumentParser) -> None:
    """--system and the parallel / precision options of `attncc report`."""
    parser.add_argument("--system", help="price on a system of many devices (e.g. dgx-h100, hgx-h800; see "
                                         "attncc.cost_models.list_systems()) split by --tp/--ep/--pp/--dp")
    for name, what in (("tp", "tensor"), ("ep", "expert"), ("pp", "pipeline"), ("dp", "data")):
        parser.add_argument(f"--{name}", type=int, default=1, help=f"{what}-parallel size (with --system; default 1)")
    _precision_options(parser)
    parser.add_argument("--overlap", choices=["none", "full"], default="none",
                        help="compute/communication overlap assumed (default none: collective time is added)")


def _precision_options(parser) -> None:
    parser.add_argument("--weight-dtype", choices=["bf16", "fp8", "fp8_e4m3", "fp8_e5m2"], default="bf16",
                        help="weights stored and multiplied in this format (FP8 at the device's datasheet FP8 rate)")
    parser.add_argument("--kv-dtype", choices=["bf16", "fp8", "fp8_e4m3", "fp8_e5m2", "int8"], default="bf16",
                        help="KV-cache format")
    parser.add_argument("--dispatch-dtype", choices=["bf16", "fp8", "fp8_e4m3", "fp8_e5m2"], default="bf16",
                        help="MoE expert-parallel dispatch format (combine stays BF16)")


def cmd_system_report(args, model, inputs) -> int:
    """`attncc report MODEL --system S --tp 8 ...`: a SystemReport as text, JSON or HTML."""
    from .systems_api import analyze_system

    if args.phase is None:
        args.phase = "decode"
    report = analyze_system(model, inputs, system=args.system, parallel={"tp": args.tp, "ep": args.ep, "pp": args.pp,
                                                                        "dp": args.dp},
                            phase=args.phase, batch=args.batch or 1, seq=args.seq, past=args.past, overlap=args.overlap,
                            weight_dtype=args.weight_dtype, kv_dtype=args.kv_dtype, dispatch_dtype=args.dispatch_dtype)
    print(report.to_json() if args.json else report.to_text())
    if args.html:
        report.to_html(args.html)
        print(f"wrote {args.html}")
    return 0


def add_plan_parser(sub, epilog: str = "") -> argparse.ArgumentParser:
    p = sub.add_parser("plan", help="search tp/ep/pp/dp/batch on 1..N nodes of a system for the best tokens/s per device",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=epilog)
    p.add_argument("model", metavar="MODEL", help="a .onnx path or FILE.py:FUNCTION (e.g. a meta-device model)")
    p.add_argument("--system", required=True, help="system name (dgx-h100, dgx-h200, dgx-a100, hgx-h800, pcie-h100)")
    p.add_argument("--nodes", default="1", help="node counts to search, N or A..B (default 1)")
    p.add_argument("--phase", choices=["decode", "prefill"], default="decode")
    p.add_argument("--seq", type=int, default=4096, help="KV length (decode) or prompt length (prefill); default 4096")
    p.add_argument("--tpot-slo", help="latency bound per step (time per output token in decode), e.g. 50ms")
    p.add_argument("--top", type=int, default=10, help="configurations to print (default 10)")
    p.add_argument("--shared-experts-routed", type=int, default=0,
                   help="shared experts dispatched like routed ones in expert parallelism (DeepSeek-V3 decode: 1)")
    p.add_argument("--overlap", choices=["none", "full"], default="none")
    _precision_options(p)
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="progress on stderr, and the full traceback of an error")
    p.set_defaults(func=cmd_plan)
    return p


def cmd_plan(args) -> int:
    from .cli import load_model
    from .cost_models.systems import get_system
    from .systems_api import LOW_PRECISION, plan_system

    nodes, slo = parse_nodes(args.nodes), parse_seconds(args.tpot_slo) if args.tpot_slo else None
    system = get_system(args.system)   # an unknown name fails here, before the (slow) import
    model, inputs = load_model(args.model)
    profile, accepted, rejected, notes = plan_system(
        model, inputs, system=system, nodes=nodes, phase=args.phase, seq=args.seq, tpot_slo_s=slo,
        overlap=args.overlap, shared_experts_routed=args.shared_experts_routed,
        weight_bytes=LOW_PRECISION[args.weight_dtype], kv_bytes=LOW_PRECISION[args.kv_dtype],
        dispatch_bytes=LOW_PRECISION[args.dispatch_dtype])
    print(f"plan: {args.model} on {system.name} ({system.device.name}, {system.devices_per_node} per node), "
          f"{args.phase}, KV length {args.seq}, nodes {nodes.start}..{nodes.stop - 1}"
          + (f", TPOT SLO {slo * 1e3:.4g} ms" if slo else "") + f"; weights {args.weight_dtype}, KV {args.kv_dtype}, "
          f"dispatch {args.dispatch_dtype}; overlap {args.overlap}")
    print(f"model: {profile.layers} layers ({profile.moe_layers} MoE, {profile.experts} experts, "
          f"{profile.experts_per_token:g} per token), hidden {profile.hidden}, KV {profile.kv_bytes_per_token / 1e3:.6g} kB "
          f"per token, weights {profile.dense_weight_bytes / 1e9:.1f} GB dense + {profile.expert_weight_bytes / 1e9:.1f} GB experts (BF16)")
    for n in notes[:3]:
        print(f"note: {n[:200]}")
    if not accepted:
        reasons = sorted({r.rejected.split(":")[0] for r in rejected})
        best = min(rejected, key=lambda p: (p.memory_bytes > p.capacity_bytes, p.step_time_s), default=None)
        print(f"no configuration meets the SLO and fits in memory (rejected: {', '.join(reasons) or 'none searched'})"
              + (f"; closest: nodes={best.nodes} tp={best.tp} ep={best.ep} pp={best.pp} dp={best.dp} "
                 f"batch={best.batch}: {best.rejected}" if best else ""))
        return 1
    head = f"{'nodes':>5} {'tp':>3} {'ep':>4} {'pp':>3} {'dp':>3} {'batch':>6} {'TPOT ms':>8} {'comm ms':>8} " \
           f"{'GB/dev':>7} {'tok/s/dev':>10} {'tok/s/user':>10}"
    print(head)
    seen = set()
    shown = 0
    for p in accepted:
        key = (p.tp, p.ep, p.pp, p.batch // max(p.ep, 1), p.dp)
        if key in seen:
            continue
        seen.add(key)
        print(f"{p.nodes:>5} {p.tp:>3} {p.ep:>4} {p.pp:>3} {p.dp:>3} {p.batch:>6} {p.step_time_s * 1e3:>8.2f} "
              f"{p.collective_s * 1e3:>8.2f} {p.memory_bytes / 1e9:>7.1f} {p.tokens_per_s_per_device:>10.1f} "
              f"{1 / p.step_time_s:>10.1f}")
        shown += 1
        if shown >= args.top:
            break
    by = {}
    for r in rejected:
        by.setdefault(r.rejected.split(":")[0], []).append(r)
    for why, plans in sorted(by.items()):
        ex = min(plans, key=lambda p: p.step_time_s if why == "SLO" else p.memory_bytes)
        print(f"rejected {len(plans)} for {why}; e.g. nodes={ex.nodes} tp={ex.tp} ep={ex.ep} pp={ex.pp} dp={ex.dp} "
              f"batch={ex.batch}: {ex.rejected}")
    return 0


def cmd_calibrate_loopback(args) -> int:
    from .loopback import measure_loopback_allreduce, save_loopback_link

    measured = measure_loopback_allreduce()
    print(f"gloo all-reduce between 2 local processes: latency {measured['latency_s'] * 1e6:.0f} us, "
          f"bandwidth {measured['bandwidth_bytes_per_s'] / 1e9:.2f} GB/s (load {measured['load']:.2f})")
    if not args.dry_run:
        print(f"saved to {save_loopback_link(measured)}; system host-loopback now uses it")
    return 0
