"""The `attncc` command line: compile, report, targets, hardware, calibrate."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from typing import Any

EPILOG = """examples:
  attncc targets
  attncc compile model.onnx --target cpu --export out/
  attncc compile examples/models.py:llama_block --print-pipeline --dump-ir ir_dump/
  attncc report model.onnx --hardware h100-sxm --phase decode --seq 8192 --batch 16
  attncc report mha.onnx gqa.onnx mla.onnx --hardware h100-sxm --phase decode --seq 8192   (compare variants)
  attncc report model.onnx --hardware h100-sxm,a100-80gb,host-cpu                           (compare devices)
  attncc calibrate

MODEL is a path to a .onnx file, or FILE.py:FUNCTION / package.module:FUNCTION where
FUNCTION() returns (torch.nn.Module, example_inputs_tuple)."""


def load_model(spec: str) -> tuple[Any, Any]:
    """Resolve a MODEL argument to (model, example_inputs)."""
    if spec.endswith(".onnx"):
        if not os.path.exists(spec):
            raise SystemExit(f"attncc: no such ONNX file: {spec}")
        return spec, None
    if ":" not in spec:
        raise SystemExit(f"attncc: MODEL must be a .onnx path or FILE.py:FUNCTION / module:FUNCTION, got {spec!r}")
    where, func = spec.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.exists(where):
            raise SystemExit(f"attncc: no such file: {where}")
        loader = importlib.util.spec_from_file_location("attncc_user_model", where)
        mod = importlib.util.module_from_spec(loader)
        sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
        loader.loader.exec_module(mod)
    else:
        mod = importlib.import_module(where)
    if not hasattr(mod, func):
        raise SystemExit(f"attncc: {where} has no function {func!r}")
    out = getattr(mod, func)()
    if not (isinstance(out, tuple) and len(out) == 2):
        raise SystemExit(f"attncc: {spec} must return (model, example_inputs)")
    return out


def _cmd_targets(args) -> int:
    import attncc

    for t in attncc.targets():
        print(f"{t['name']:<12} {t['status']:<10} {t['description']}")
    return 0


def _cmd_hardware(args) -> int:
    import attncc

    for name in attncc.hardware():
        print(name)
    return 0


def _cmd_compile(args) -> int:
    import attncc
    from attncc import pipelines

    pipeline = args.passes or pipelines.default_pipeline(args.target)
    if args.print_pipeline:
        print(pipeline)
        if args.model is None:
            return 0
    if args.model is None:
        raise SystemExit("attncc compile: MODEL is required (unless only --print-pipeline)")
    model, inputs = load_model(args.model)
    cm = attncc.compile(model, inputs, target=args.target, passes=pipeline, dump_dir=args.dump_ir)
    print(f"compiled for {args.target}: {len(cm.graph.nodes)} nodes, {len(cm.graph.attention_ops())} attention op(s)")
    for n in cm.graph.attention_ops():
        print(f"  {n.name}: {n.spec.summary()}")
    for d in cm.diagnostics:
        print(f"  note: {d.get('kind')}: {d.get('reason') or d.get('message') or d.get('spec') or ''} "
              f"{'(' + d['node'] + ')' if d.get('node') else ''}")
    if args.print_ir:
        print(cm.graph)
    if args.export:
        files = cm.export(args.export)
        print(f"exported {len(files)} files to {args.export}")
    if args.report:
        print(cm.report.to_text())
    return 0


def _cmd_report(args) -> int:
    import attncc
    from attncc.cost_models import compare

    options = {k: getattr(args, k) for k in ("phase", "seq", "batch", "past") if getattr(args, k) is not None}
    devices = [h.strip() for h in args.hardware.split(",") if h.strip()]
    reports = []
    for spec in args.model:
        model, inputs = load_model(spec)
        for hw in devices:
            label = spec.rsplit("/", 1)[-1] + (f"@{hw}" if len(devices) > 1 else "")
            reports.append((label, attncc.analyze(model, inputs, hardware=hw, **options)))
    if len(reports) > 1:  # comparison mode: variants and/or devices side by side
        print(compare(reports))
    elif args.json:
        print(reports[0][1].to_json())
    else:
        print(reports[0][1].to_text())
    if args.html:
        reports[0][1].to_html(args.html)
        print(f"wrote {args.html}")
    return 0


def _cmd_calibrate(args) -> int:
    from attncc.cost_models import calibrate_host

    kernels = None
    if args.fit:  # time attncc's own kernels and refit the efficiency factors on them
        from attncc.calibration import measure_kernels
        kernels = measure_kernels(quick=args.quick)
    probes = []
    try:  # attncc's own TVM matmul beats numpy's sgemm here: the fp32 peak is the best of both
        from attncc.calibration import measure_matmul_peak
        probes.append(measure_matmul_peak(512 if args.quick else 2048))
    except ImportError as e:
        print(f"fp32 peak from numpy only: TVM kernels unavailable ({e})")
    spec = calibrate_host(save=not args.dry_run, kernels=kernels, fp32_probes=probes)
    print(json.dumps(spec.to_dict() if hasattr(spec, "to_dict") else spec.__dict__, indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `attncc`."""
    p = argparse.ArgumentParser(
        prog="attncc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="attncc — an attention compiler: finds every attention site in a torch or ONNX model, "
                    "lifts it into one IR op, optimizes, prices it on real hardware and generates TVM kernels.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="import, optimize and build a model for a target",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    c.add_argument("model", nargs="?", metavar="MODEL", help="a .onnx path or FILE.py:FUNCTION")
    c.add_argument("--target", default="cpu", help="compile target (see `attncc targets`; default: cpu)")
    c.add_argument("--passes", help="pipeline text, e.g. 'canonicalize,lift-attention,dce' (default: the target's)")
    c.add_argument("--print-pipeline", action="store_true", help="print the pipeline that will run")
    c.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR")
    c.add_argument("--print-ir", action="store_true", help="print the optimized IR")
    c.add_argument("--export", metavar="DIR", help="write a deployable folder")
    c.add_argument("--report", action="store_true", help="print the cost report for the target's hardware")
    c.set_defaults(func=_cmd_compile)

    r = sub.add_parser("report", help="cost report (FLOPs, bytes, roofline time) of a model on a hardware spec",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    r.add_argument("model", metavar="MODEL", nargs="+",
                   help="a .onnx path or FILE.py:FUNCTION; several models are compared side by side")
    r.add_argument("--hardware", default="host-cpu",
                   help="hardware spec, or a comma-separated list to compare devices (see `attncc hardware`; default: host-cpu)")
    r.add_argument("--phase", choices=["prefill", "decode"], help="price a prefill or a decode step")
    r.add_argument("--seq", type=int, help="sequence length (prefill) or KV length (decode)")
    r.add_argument("--batch", type=int, help="batch size")
    r.add_argument("--past", type=int, help="KV-cache length already present")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--html", metavar="PATH", help="also write an HTML report with a roofline plot")
    r.set_defaults(func=_cmd_report)

    t = sub.add_parser("targets", help="list compile targets")
    t.set_defaults(func=_cmd_targets)
    h = sub.add_parser("hardware", help="list hardware specs in the cost-model catalog")
    h.set_defaults(func=_cmd_hardware)
    k = sub.add_parser("calibrate", help="measure this CPU's peak FLOP/s and bandwidth and save a host spec")
    k.add_argument("--dry-run", action="store_true", help="measure and print, do not save")
    k.add_argument("--fit", action="store_true", help="also time attncc's CPU kernels and refit the efficiency factors")
    k.add_argument("--quick", action="store_true", help="with --fit: a third of the kernels")
    k.set_defaults(func=_cmd_calibrate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `attncc` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        return args.func(args)
    except (ValueError, TypeError, NotImplementedError, KeyError) as e:
        print(f"attncc {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
