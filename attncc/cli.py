"""The `attncc` command line: compile, report, targets, hardware, calibrate."""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import traceback
from typing import Any

from .cli_errors import Parser, held_stderr, one_line, quiet_torch_logs
from .errors import ModelFileError, UsageError

EPILOG = """examples:
  attncc targets
  attncc compile model.onnx --target cpu --export out/
  attncc compile examples/models.py:llama_block --print-pipeline --dump-ir out/ir
  attncc report model.onnx --hardware h100-sxm --phase decode --seq 8192 --batch 16
  attncc report model.onnx --dims batch_size=16 --dims sequence_length=8192          (any named dynamic dim)
  attncc report mha.onnx gqa.onnx mla.onnx --hardware h100-sxm --phase decode --seq 8192   (compare variants)
  attncc report model.onnx --hardware h100-sxm,a100-80gb,host-cpu                           (compare devices)
  attncc calibrate

MODEL is a path to a .onnx file, or FILE.py:FUNCTION / package.module:FUNCTION where
FUNCTION() returns (torch.nn.Module, example_inputs_tuple)."""


def load_model(spec: str) -> tuple[Any, Any]:
    """Resolve a MODEL argument to (model, example_inputs)."""
    if spec.endswith(".onnx"):
        if not os.path.exists(spec):   # the ONNX frontend's wording for a file it cannot read
            raise ModelFileError(f"cannot read ONNX file {spec}: No such file or directory")
        return spec, None
    if ":" not in spec:
        raise UsageError(f"MODEL must be a .onnx path or FILE.py:FUNCTION / module:FUNCTION, got {spec!r}")
    where, func = spec.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.exists(where):
            raise ModelFileError(f"cannot read model file {where}: No such file or directory")
        loader = importlib.util.spec_from_file_location("attncc_user_model", where)
        mod = importlib.util.module_from_spec(loader)
        sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
        loader.loader.exec_module(mod)
    else:
        mod = importlib.import_module(where)
    if not hasattr(mod, func):
        raise UsageError(f"{where} has no function {func!r}")
    out = getattr(mod, func)()
    if not (isinstance(out, tuple) and len(out) == 2):
        raise UsageError(f"{spec} must return (model, example_inputs)")
    return out


def _cmd_targets(args) -> int:
    import attncc

    from .backends.availability import target_needs

    print("target       build  run    description  (build: compile + export here; run: execute here)")
    for t in attncc.targets():
        if t["status"] != "available":
            print(f"{t['name']:<12} {t['status']:<14} {t['description']}")
            continue
        build, run = target_needs(t["name"])
        print(f"{t['name']:<12} {'yes' if build.ok else 'NO':<6} {'yes' if run.ok else 'NO':<6} {t['description']}")
        for side, need in (("build", build), ("run", run)):
            print(f"{'':12} {side}: {'' if need.ok else 'missing: '}{need.detail}")
    return 0


def _cmd_hardware(args) -> int:
    import attncc

    for name in attncc.hardware():
        print(name)
    return 0


def attncc_source_dirs() -> list[str]:
    """attncc's own source folders: the package and the subpackages installed from top-level folders (ir/, ...)."""
    dirs = []
    for name in ("attncc", "attncc.ir", "attncc.cost_models", "attncc.backends"):
        spec = importlib.util.find_spec(name)
        dirs += [os.path.realpath(d) for d in (spec.submodule_search_locations or [])] if spec else []
    return dirs


def check_dump_dir(directory: str) -> None:
    """Refuse to write IR dumps into (or under) a folder holding attncc's own .py files, e.g. `ir/` at the repo root."""
    real = os.path.realpath(directory)
    for root in attncc_source_dirs():
        if real == root or real.startswith(root + os.sep):
            raise UsageError(f"--dump-ir {directory}: refusing to write IR dumps into attncc's own source folder "
                             f"{root} (it holds the package's .py files); use another folder, e.g. --dump-ir out/ir")


def parse_dynamic(items: list[str], model) -> dict:
    """`INPUT:AXIS=NAME[:MIN:MAX]` items -> torch.export dynamic_shapes keyed by forward's argument names."""
    import inspect

    import torch

    names = [p for p in inspect.signature(model.forward).parameters if p != "self"] \
        if hasattr(model, "forward") else []
    if not names:
        raise UsageError("--dynamic applies to torch models (ONNX models declare dynamic dims with dim_param)")
    shapes: dict = {n: None for n in names}
    dims: dict = {}
    for item in items:
        head, sep, rest = item.partition("=")
        inp, _, axis = head.partition(":")
        parts = rest.split(":")
        if not sep or not axis.isdigit() or not parts[0].isidentifier() or len(parts) not in (1, 3) \
                or (len(parts) == 3 and not (parts[1].isdigit() and parts[2].isdigit())):
            raise UsageError(f"--dynamic {item!r}: expected INPUT:AXIS=NAME or INPUT:AXIS=NAME:MIN:MAX, e.g. x:1=seq:2:4096")
        if inp not in shapes:
            raise UsageError(f"--dynamic {item!r}: the model's inputs are {names}")
        name = parts[0]
        if name not in dims:
            kw = {"min": int(parts[1]), "max": int(parts[2])} if len(parts) == 3 else {}
            dims[name] = torch.export.Dim(name, **kw)
        shapes[inp] = {**(shapes[inp] or {}), int(axis): dims[name]}
    return shapes


def _cmd_compile(args) -> int:
    import attncc
    from attncc import pipelines

    if args.dump_ir:
        check_dump_dir(args.dump_ir)
    pipeline = args.passes or pipelines.default_pipeline(args.target)
    if args.print_pipeline:
        print(pipeline)
        if args.model is None:
            return 0
    if args.model is None:
        raise UsageError("MODEL is required (unless only --print-pipeline)")
    model, inputs = load_model(args.model)
    quiet_torch_logs(args)
    dynamic = parse_dynamic(args.dynamic, model) if args.dynamic else None
    with held_stderr(args):
        cm = attncc.compile(model, inputs, target=args.target, passes=pipeline, dump_dir=args.dump_ir,
                            dynamic_shapes=dynamic)
    if inputs is not None and not isinstance(model, (str, os.PathLike)):
        args_ = inputs if isinstance(inputs, (tuple, list)) else (inputs,)
        from attncc.backends import get_backend

        program = cm.executable.artifacts.get("program")
        if program is not None and not get_backend(args.target).capabilities.runs_here:
            # a cross target (mobile-cpu): build for these shapes without running its code (emulation only)
            cm.bind_dims(args_)
            program.runner_for(tuple(tuple(int(d) for d in a.shape) for a in args_))
        else:
            cm(*args_)   # build now (a model with dynamic dims builds at its first call), so export has kernels
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

    if getattr(args, "system", None):  # a system of many devices (attncc/cli_systems.py)
        from attncc.cli_systems import cmd_system_report

        if len(args.model) != 1:
            raise UsageError("--system prices one model at a time")
        return cmd_system_report(args, *load_model(args.model[0]))

    options = {k: getattr(args, k) for k in ("phase", "seq", "batch", "past") if getattr(args, k) is not None}
    options.update({k: True for k in ("cuda_graphs", "per_op") if getattr(args, k, False)})
    if args.dims:
        options["dims"] = dict(args.dims)
    devices = [h.strip() for h in args.hardware.split(",") if h.strip()]
    reports = []
    for spec in args.model:
        model, inputs = load_model(spec)
        quiet_torch_logs(args)
        for hw in devices:
            label = spec.rsplit("/", 1)[-1] + (f"@{hw}" if len(devices) > 1 else "")
            with held_stderr(args):
                report = attncc.analyze(model, inputs, hardware=hw, **options)
            if report.unused_dims and hw == devices[0]:  # the same model on every device: say it once
                note = next(n for n in report.notes if n.startswith("requested "))
                print(f"attncc report: warning: {spec}: {note}", file=sys.stderr)
            reports.append((label, report))
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
    from attncc.calibration import check_machine_load
    from attncc.cost_models import calibrate_host

    if getattr(args, "loopback", False):
        from attncc.cli_systems import cmd_calibrate_loopback

        return cmd_calibrate_loopback(args)

    log = logging.getLogger("attncc")
    log.info(check_machine_load(force=args.force))  # refuses on a busy machine unless --force
    kernels = None
    if args.fit:  # time attncc's own kernels and refit the efficiency factors on them
        from attncc.backends.cpu import kernel_suite   # the cpu backend's kernels, passed to calibration
        from attncc.calibration import measure_kernels
        log.info("timing attncc's CPU kernels (--fit%s): builds and times each one, minutes",
                 " --quick" if args.quick else "")
        from attncc.calibration_plans import plan_kernel_cases   # every kernel of a few compiled blocks
        kernels = measure_kernels(kernel_suite, quick=args.quick, log=log.info,
                                  plans=plan_kernel_cases(kernel_suite, args.quick))
    probes = []
    try:  # attncc's own TVM matmul beats numpy's sgemm here: the fp32 peak is the best of both
        from attncc.calibration import measure_matmul_peak
        n = 512 if args.quick else 2048

        def build_peak_matmul():
            from attncc.backends.cpu import kernel_suite
            return kernel_suite.matmul_case(n, n, n, True)

        log.info("measuring the fp32 peak of attncc's TVM matmul")
        probes.append(measure_matmul_peak(build_peak_matmul))
    except ImportError as e:
        print(f"fp32 peak from numpy only: TVM kernels unavailable ({e})")
    dtype_probes = {}
    try:  # numpy has no bfloat16: torch's matmul measures it (cost_models itself imports no torch)
        from attncc.calibration import measure_torch_gemm
        dtype_probes["bfloat16"] = measure_torch_gemm("bfloat16", 256 if args.quick else 1024)
    except ImportError as e:
        print(f"bfloat16 peak not measured: torch unavailable ({e})")
    log.info("measuring matmul peaks (numpy), memory bandwidth and call overhead")
    spec = calibrate_host(save=not args.dry_run, kernels=kernels, fp32_probes=probes, dtype_probes=dtype_probes)
    print(json.dumps(spec.to_dict() if hasattr(spec, "to_dict") else spec.__dict__, indent=2, default=str))
    if args.dry_run:
        print(f"dry run: spec not saved (it would go to {spec.path}; reports keep using "
              f"{'the calibrated spec there' if os.path.exists(spec.path) else 'the default host-cpu spec'})")
    else:
        print(f"saved the calibrated host-cpu spec to {spec.path}; reports on host-cpu now use it "
              f"(their header says 'hardware: host-cpu (calibrated, {spec.path}, ...)')")
    return 0


def parse_dim(text: str) -> tuple[str, int]:
    """`--dims NAME=VALUE` -> (NAME, VALUE)."""
    name, eq, value = text.partition("=")
    if not eq or not name.strip() or not value.strip().isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE with a positive integer VALUE, got {text!r}")
    return name.strip(), int(value)


class _VersionAction(argparse.Action):
    """`--version`: attncc's version and the installed TVM's (read from package metadata: no TVM import)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def version_text() -> str:
    """'attncc X (TVM Y)'."""
    from importlib import metadata

    import attncc

    tvm = "not installed"
    for dist in ("apache-tvm", "tvm"):
        try:
            tvm = metadata.version(dist)
            break
        except metadata.PackageNotFoundError:
            continue
    return f"attncc {attncc.__version__} (TVM {tvm})"


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `attncc`."""
    p = Parser(
        prog="attncc", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="attncc — an attention compiler: finds every attention site in a torch or ONNX model, "
                    "lifts it into one IR op, optimizes, prices it on real hardware and generates TVM kernels.")
    p.add_argument("--version", action=_VersionAction, help="print attncc's and TVM's versions and exit")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="progress on stderr, and the full traceback of an error")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="import, optimize and build a model for a target",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    c.add_argument("model", nargs="?", metavar="MODEL", help="a .onnx path or FILE.py:FUNCTION")
    c.add_argument("--target", default="cpu", help="compile target (see `attncc targets`; default: cpu)")
    c.add_argument("--passes", help="pipeline text, e.g. 'canonicalize,lift-attention,dce' (default: the target's)")
    c.add_argument("--print-pipeline", action="store_true", help="print the pipeline that will run")
    c.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR")
    c.add_argument("--print-ir", action="store_true", help="print the optimized IR")
    c.add_argument("--export", "-o", metavar="DIR", help="write a deployable folder")
    c.add_argument("--report", action="store_true", help="print the cost report for the target's hardware")
    c.add_argument("--dynamic", metavar="INPUT:AXIS=NAME[:MIN:MAX]", action="append", default=[],
                   help="declare a dynamic dim of a torch model's input for torch.export (repeatable), e.g. "
                        "x:1=seq:2:4096; one shape-generic build then serves every size (ONNX: use dim_param)")
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
    r.add_argument("--dims", metavar="NAME=VALUE", type=parse_dim, action="append",
                   help="bind a named dynamic dim of the model (repeatable), e.g. --dims sequence_length=8192; "
                        "--batch/--seq/--past bind dims named batch/seq/past")
    r.add_argument("--cuda-graphs", action="store_true",
                   help="price GPU kernel launches as CUDA-graph replays (as vLLM/gpt-fast decode loops run), not eager launches")
    r.add_argument("--per-op", action="store_true",
                   help="one row per IR op instead of one row per kernel of the device's target build")
    r.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r.add_argument("--html", metavar="PATH", help="also write an HTML report with a roofline plot")
    r.set_defaults(func=_cmd_report)
    from attncc.cli_systems import add_plan_parser, add_system_options

    add_system_options(r)

    t = sub.add_parser("targets", help="list compile targets and whether this machine can build and run each")
    t.set_defaults(func=_cmd_targets)
    h = sub.add_parser("hardware", help="list hardware specs in the cost-model catalog")
    h.set_defaults(func=_cmd_hardware)
    k = sub.add_parser("calibrate", help="measure this CPU's peak FLOP/s and bandwidth and save a host spec")
    k.add_argument("--dry-run", action="store_true", help="measure and print, do not save")
    k.add_argument("--fit", action="store_true", help="also time attncc's CPU kernels and refit the efficiency factors")
    k.add_argument("--quick", action="store_true", help="with --fit: a third of the kernels")
    k.add_argument("--force", action="store_true",
                   help="measure even when the machine is busy (load per core above 0.5: the figures will be low)")
    k.add_argument("--loopback", action="store_true",
                   help="measure a gloo all-reduce between 2 local processes as the host-loopback system's link")
    k.set_defaults(func=_cmd_calibrate)
    add_plan_parser(sub, EPILOG)
    for command in (c, r, t, h, k):  # also accepted after the command; SUPPRESS keeps a flag given before it
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="progress on stderr, and the full traceback of an error")
    p.commands = {"compile": c, "report": r, "targets": t, "hardware": h, "calibrate": k}
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `attncc` command: every failure is one line `attncc COMMAND: error: ...` on stderr and
    exit status 2; `--verbose` adds the traceback."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:   # named by the command's parser: `attncc compile: error: unrecognized arguments: ...`
        parser.commands.get(getattr(args, "command", None), parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    handler = None
    if args.verbose or sys.stderr.isatty():  # progress lines of the slow stages (compile, calibrate)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("attncc: %(message)s"))
        logger = logging.getLogger("attncc")
        logger.addHandler(handler)
        old_level = logger.level
        logger.setLevel(logging.INFO)
    args.torch_log_levels = {}
    try:
        return args.func(args)
    except BrokenPipeError:  # `attncc report ... | head`: the reader left; nothing to say
        sys.stdout = open(os.devnull, "w")
        return 1
    except Exception as e:  # noqa: BLE001 — every failure is one line; --verbose adds the traceback
        if args.verbose:
            traceback.print_exc()
        print(f"attncc {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    finally:
        for n, level in args.torch_log_levels.items():
            logging.getLogger(n).setLevel(level)
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(old_level)


if __name__ == "__main__":
    sys.exit(main())
