"""Compile time: attncc vs torch.compile (inductor), cold and warm caches, each compile in a fresh process.

    python benchmarks/compile_time.py [--models block,vit,decoder12] [--rounds 1] [--quick]

For every model and engine, one fresh process compiles with an empty cache (cold), then another fresh
process compiles again with the cache the first one filled (warm). Each child times, after torch and the
model are built: importing the engine (attncc; inductor is imported inside torch.compile's first call),
compiling, and the first call (torch.compile compiles lazily there), and checks the output against eager.
attncc's row also gives its stages (torch.export is its "import" stage; "kernel build" is TVM's codegen and
the link, by $ATTNCC_BUILD_JOBS processes, default the usable CPUs other jobs leave idle) and the distinct
kernels it built. Models: the example block (examples/models.py, batch 2 x 128 x 256), timm ViT-tiny at 64 px
(12 layers; when timm imports), and a 12-layer decoder of identical example blocks (batch 1 x 64 x 256).
--rounds N repeats everything N times (engines in alternating order, each round with fresh caches) and
reports the minimum per row; --quick is the example block and ViT-tiny, one round.
The load average is printed per row: on a loaded machine the seconds mean little; the ratios, from one
run, less so.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_model(name: str):
    """(model, inputs) for a benchmark model name."""
    import torch

    sys.path.insert(0, ROOT)
    from examples.models import LlamaStyleBlock, llama_block

    if name == "block":
        return llama_block()
    if name == "decoder12":
        torch.manual_seed(0)
        return torch.nn.Sequential(*[LlamaStyleBlock() for _ in range(12)]).eval(), (torch.randn(1, 64, 256),)
    if name == "vit":
        sys.path.insert(0, os.path.join(ROOT, "tests", "models"))
        from timm_compat import import_timm

        timm = import_timm()
        torch.manual_seed(0)
        model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=64, num_classes=10)
        return model.eval(), (torch.randn(1, 3, 64, 64),)
    raise SystemExit(f"unknown model {name!r}; models: block, vit, decoder12")


def child(engine: str, model_name: str) -> dict:
    """One compile in this (fresh) process; returns its seconds and the max error vs eager."""
    import numpy as np
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    model, inputs = build_model(model_name)
    with torch.no_grad():
        want = model(*inputs)
    row: dict = {}
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    if engine == "attncc":
        import attncc

        row["import_engine_s"] = time.perf_counter() - start
        _time_kernel_builds()
        compiled = attncc.compile(model, inputs, target="cpu")
        first = time.perf_counter()
        got = compiled(*inputs)
        row["first_call_s"] = time.perf_counter() - first
        row["cpu_s"] = _cpu_seconds() - cpu_start
        row["stages"] = getattr(compiled, "compile_stages", {})
        program = compiled.executable.artifacts.get("program")
        if program is not None:
            plans = [r.plan for r in program.runners.values()]
            row["kernels"] = sum(len({s["func"] for s in p.steps if s.get("func")}) for p in plans)
            row["calls"] = sum(sum(1 for s in p.steps if s.get("func")) for p in plans)
            row["builds"] = program.builds
        row["tvm_compiler_loaded"] = "tvm.relax" in sys.modules or "tvm.te" in sys.modules
        row["kernel_build_s"], row["build_jobs"] = _kernel_build_s[0], _build_jobs()
    else:
        compiled = torch.compile(model, backend="inductor")
        with torch.no_grad():
            got = compiled(*inputs)
    row["seconds"] = time.perf_counter() - start
    got = got[0] if isinstance(got, (list, tuple)) else got
    row["max_abs_err"] = float(np.max(np.abs(np.asarray(got.detach() if hasattr(got, "detach") else got)
                                             - want.detach().numpy())))
    return row


_kernel_build_s = [0.0]


def _cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its finished children (attncc's build workers):
    under load, wall seconds mostly measure the other jobs; CPU seconds compare attncc versions fairly.
    Not printed for inductor, whose compile workers outlive the call (their CPU time is not counted here)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _time_kernel_builds() -> None:
    """Add the seconds of every cpu library build (TVM codegen + link) to _kernel_build_s. Wraps the plugin's
    stage, not the builder, so a warm (cached) compile still never imports TVM's compiler."""
    from attncc.backends.cpu.plugin import CpuPlugin

    real = CpuPlugin.build_library

    def timed(*args, **kwargs):
        clock = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            _kernel_build_s[0] += time.perf_counter() - clock

    CpuPlugin.build_library = timed


def _build_jobs() -> int | str:
    """How many processes compiled the latest build ("-" when nothing was built: host_build never imported)."""
    host_build = sys.modules.get("attncc.backends.core.host_build")
    return host_build.LAST_BUILD["processes"] if host_build is not None and hasattr(host_build, "LAST_BUILD") else "-"


def run_child(engine: str, model: str, cache: str) -> dict:
    env = {**os.environ, "ATTNCC_CACHE_DIR": os.path.join(cache, "attncc"),
           "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor"), "TRITON_CACHE_DIR": os.path.join(cache, "triton")}
    wall = time.perf_counter()
    p = subprocess.run([sys.executable, __file__, "--child", engine, model], env=env, capture_output=True, text=True)
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["?"])[-1][:200]}
    row = json.loads(p.stdout.strip().splitlines()[-1])
    row["process_s"] = time.perf_counter() - wall
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="comma list of block, vit, decoder12 (default: all three)")
    ap.add_argument("--engines", default="attncc,inductor")
    ap.add_argument("--rounds", type=int, default=1, help="repeat everything; the minimum per row is reported")
    ap.add_argument("--quick", action="store_true", help="the example block and ViT-tiny, one round")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child), default=str))
        return 0
    models = (args.models or ("block,vit" if args.quick else "block,vit,decoder12")).split(",")
    rounds = 1 if args.quick else max(1, args.rounds)
    engines = args.engines.split(",")
    load_before = os.getloadavg()
    from cpu_peak import host_cpu   # benchmarks/ (this script's folder)

    print(f"host: {host_cpu()}; {os.cpu_count()} logical CPUs, {len(os.sched_getaffinity(0))} usable; "
          f"load average {load_before[0]:.2f} (1 min) at start; attncc build jobs: "
          f"{os.environ.get('ATTNCC_BUILD_JOBS') or 'default (usable CPUs left idle by other jobs)'}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    results: dict = {}
    for r in range(rounds):
        for model in models:
            for engine in (engines if r % 2 == 0 else engines[::-1]):   # alternate who runs first
                with tempfile.TemporaryDirectory(prefix=f"compile-{engine}-") as cache:
                    for kind in ("cold", "warm"):
                        row = run_child(engine, model, cache)
                        row["load"] = os.getloadavg()[0]
                        _print_row(model, engine, kind, row, f"round {r + 1}/{rounds} " if rounds > 1 else "")
                        results.setdefault((model, engine, kind), []).append(row)
    results = {k: min(rows, key=lambda row: row.get("seconds", float("inf"))) for k, rows in results.items()}
    print()
    print(f"{'model':10} {'kind':5} {'attncc s':>9} {'inductor s':>10} {'attncc/inductor':>16} {'load':>5}"
          + ("  (minimum of each engine's rounds)" if rounds > 1 else ""))
    for model in models:
        for kind in ("cold", "warm"):
            a, i = results.get((model, "attncc", kind), {}), results.get((model, "inductor", kind), {})
            ratio = f"{a['seconds'] / i['seconds']:.2f}x" if "seconds" in a and "seconds" in i else "-"
            load = max(a.get("load", 0.0), i.get("load", 0.0))
            print(f"{model:10} {kind:5} {a.get('seconds', float('nan')):9.2f} {i.get('seconds', float('nan')):10.2f} "
                  f"{ratio:>16} {load:5.2f}")
    print(f"load average at end {os.getloadavg()[0]:.2f} (1 min); at start {load_before[0]:.2f}")
    return 0


def _print_row(model: str, engine: str, kind: str, row: dict, prefix: str = "") -> None:
    if "error" in row:
        print(f"{prefix}{model:10} {engine:8} {kind:5} error: {row['error']}")
        return
    extra = ""
    if engine == "attncc":
        st = row.get("stages", {})
        extra = (f" (CPU {row.get('cpu_s', float('nan')):.2f} s; import attncc {row['import_engine_s']:.2f} s, load backend {st.get('load backend', 0):.2f} s, "
                 f"torch.export {st.get('import', 0):.2f} s, "
                 f"passes {st.get('passes', 0):.2f} s, lower {sum(v for k, v in st.items() if k.startswith('lower')):.2f} s "
                 f"of which kernel build {row.get('kernel_build_s', 0):.2f} s ({row.get('build_jobs', '?')} processes); "
                 f"first call {row.get('first_call_s', 0):.2f} s; {row.get('kernels', '?')} kernels for {row.get('calls', '?')} calls, {row.get('builds', '?')} builds; "
                 f"TVM compiler loaded: {row.get('tvm_compiler_loaded')})")
    if engine == "attncc" and kind == "warm" and row.get("builds"):
        extra += (" NOT WARM: the cache key changed since the cold run (attncc's backend or IR sources were edited "
                  "in between: the key includes their hash)")
    print(f"{prefix}{model:10} {engine:8} {kind:5} {row['seconds']:7.2f} s  max|err| {row['max_abs_err']:.1e}  "
          f"load {row['load']:.2f}{extra}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
