"""The Backend protocol implemented once over the shared core; a target is a `TargetPlugin`.

Static graphs build at `lower`; graphs with symbolic dims build per concrete input shapes at first
call. Every build goes through the compile cache (memory + disk).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

import numpy as np

from ...ir import Graph, graph_from_json, graph_to_json
from ..base import Executable
from .cache import GLOBAL_CACHE, CompileCache
from .plan import Plan
from .plugin import TargetPlugin
from .program import GENERIC, Program, decompose_variants

PLANS_INDEX = "plans.json"


class TvmBackend:
    """The Backend protocol over the shared core for one target plugin (see plugin.py)."""

    def __init__(self, plugin: TargetPlugin, cache: CompileCache | None = None):
        self.plugin = plugin
        self.name, self.description = plugin.name, plugin.description
        self.cache = cache or GLOBAL_CACHE

    # the device and capabilities of the options of this backend's latest build (e.g. the cuda arch's), read
    # from the plugin, so they never lag behind it
    @property
    def hardware(self) -> str:
        return self.plugin.hardware

    @property
    def capabilities(self):
        return self.plugin.capabilities

    def target(self, options: dict[str, Any] | None = None) -> dict:
        """The plugin's TVM target for these options."""
        return self.plugin.tvm_target(options or {})

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        """Lower `graph`; static graphs build now, graphs with symbolic dims build at the first call: one
        shape-generic build for every size (or, where that is impossible, one build per input shape).

        Options: cache (bool, default True), attention ("auto" | "generic"), plus the plugin's own (cpu: mcpu, num_cores).
        Variant features are first decomposed into plain Attention + IR ops (`decompose_variants`).
        """
        options = dict(options or {})
        graph = decompose_variants(graph, self.plugin.capabilities.kernel_score_mods)
        target = self.target(options)
        self.plugin.check_graph(graph, target, options)
        notes: list[str] = list(self.plugin.prepare_runtime(target))
        program = Program(graph, target, options, self.cache, notes, self.plugin)
        static = all(isinstance(d, int) for v in graph.inputs for d in v.shape)
        if static:
            program.runner_for(tuple(tuple(v.shape) for v in graph.inputs))
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)

    def export(self, executable: Executable, directory: str) -> list[str]:
        """Write a folder that runs with TVM's runtime and numpy alone (see runtime.py and the folder's README):
        graph.json, plans.json (index), per build plan_<i>.json + kernels_<i>.so (the ONE library holding every
        kernel of that build) + constants_<i>.npz (weights as the kernels read them), attncc_runtime.py,
        attncc_checks.py (the file and input checks it runs), run.py."""
        program: Program = executable.artifacts["program"]
        if not program.runners:
            raise ValueError("nothing to export yet: a model with symbolic dims builds at its first call; "
                             "call it once (any size) before exporting")
        os.makedirs(directory, exist_ok=True)
        files = []

        def path(name: str) -> str:
            files.append(os.path.join(directory, name))
            return files[-1]

        with open(path("graph.json"), "w") as f:
            f.write(graph_to_json(program.graph))
        index = []
        for i, (shapes, runner) in enumerate(program.runners.items()):
            entry = {"shapes": GENERIC if shapes == GENERIC else [list(s) for s in shapes],
                     "plan": f"plan_{i}.json", "library": f"kernels_{i}.so" if runner.lib is not None else None,
                     "constants": f"constants_{i}.npz"}
            with open(path(entry["plan"]), "w") as f:
                f.write(runner.plan.to_json())
            if runner.lib is not None:
                if getattr(runner, "library_path", None):   # loaded from the cache or an export: copy the file
                    shutil.copyfile(runner.library_path, path(entry["library"]))
                else:
                    self.plugin.save_library(runner.lib, path(entry["library"]))
            consts = {k: (v.view("uint16") if v.dtype.name == "bfloat16" else v)
                      for k, v in program.constants_of(runner).items()}
            with open(path(entry["constants"]), "wb") as f:
                np.savez(f, **consts)
            index.append(entry)
        with open(path(PLANS_INDEX), "w") as f:
            json.dump({"target": program.target, "backend": self.name,
                       "options": {k: v for k, v in program.options.items() if isinstance(v, (str, int, float, bool))},
                       "inputs": [v.name for v in program.graph.inputs],
                       "outputs": [v.name for v in program.graph.outputs], "plans": index}, f, indent=1)
        shutil.copyfile(os.path.join(os.path.dirname(__file__), "runtime.py"), path("attncc_runtime.py"))
        shutil.copyfile(os.path.join(os.path.dirname(__file__), "folder_checks.py"), path("attncc_checks.py"))
        with open(path("run.py"), "w") as f:
            f.write(RUN_SCRIPT)
        return self.plugin.export_extras(program, directory, files)

    def load(self, directory: str) -> Executable:
        """An Executable over an `export` folder, without recompiling: each build's one library is loaded."""
        with open(os.path.join(directory, "graph.json")) as f:
            graph = graph_from_json(f.read())
        with open(os.path.join(directory, PLANS_INDEX)) as f:
            index = json.load(f)
        notes: list[str] = list(self.plugin.prepare_runtime(self.target({})))  # this host may differ from the exporter's
        program = Program(graph, index["target"], index.get("options", {}), self.cache, notes, self.plugin)
        for entry in index["plans"]:
            with open(os.path.join(directory, entry["plan"])) as f:
                plan = Plan.from_json(f.read())
            lib_path = os.path.join(directory, entry["library"]) if entry["library"] else None
            lib = self.plugin.load_library(lib_path) if lib_path else None
            shapes = GENERIC if entry["shapes"] == GENERIC else tuple(tuple(s) for s in entry["shapes"])
            program.runners[shapes] = program._bind(plan, lib, lib_path)
            notes.extend(n for n in plan.notes if n not in notes)
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)


RUN_SCRIPT = '''"""Run this exported attncc model with TVM's runtime and numpy only (no attncc, no torch).

    python run.py                                  # random inputs of the example sizes; prints the outputs' shapes
    python run.py --inputs x.npz --outputs y.npz   # your inputs (arr_0, arr_1, ... in order), outputs saved
    python run.py --inputs x.npz --allow-cast      # let the runtime cast inputs of another dtype

Every file is checked against its sha256 in manifest.json before it is loaded, and every input against the
declared dtype, static sizes and dim ranges; a failure is one line on stderr and exit status 2.

From your own code:
    import attncc_runtime as rt
    model = rt.load_folder(".")          # checks the files; picks the build that matches the input shapes
    outputs = model.run([x, ...])        # numpy arrays (or torch tensors) in, TVM tensors out (.numpy())
"""
import argparse
import json
import os
import sys

os.environ.setdefault("TVM_USE_RUNTIME_LIB", "1")   # the TVM runtime alone: no compiler library
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

import numpy as np  # noqa: E402

import attncc_runtime as rt  # noqa: E402


def example_inputs(manifest: dict) -> list:
    rng = np.random.default_rng(0)
    inputs = []
    for spec in manifest["inputs"]:
        shape = [d if isinstance(d, int) else manifest.get("example_dims", {}).get(d, 8)
                 for d in (spec["example_shape"] or spec["shape"])]
        inputs.append(rng.standard_normal(shape).astype(spec["dtype"]) if "float" in spec["dtype"]
                      else rng.integers(0, 2, shape).astype(spec["dtype"]))
    return inputs


def main() -> int:
    p = argparse.ArgumentParser(prog="run.py", description="run this exported attncc model")
    p.add_argument("--inputs", help="npz with the inputs in order (arr_0, arr_1, ...); default: random")
    p.add_argument("--outputs", help="write the outputs to this npz (arr_0, arr_1, ...)")
    p.add_argument("--allow-cast", action="store_true", help="cast inputs of another dtype instead of refusing them")
    args = p.parse_args()
    try:
        rt.size_thread_pool()
        model = rt.load_folder(here, allow_cast=args.allow_cast)
        if args.inputs:
            with np.load(args.inputs) as data:
                inputs = [data[n] for n in sorted(data.files, key=lambda n: int(n.rsplit("_", 1)[-1]))]
        else:
            inputs = example_inputs(model.manifest)
        outs = model.run(inputs)
    except (rt.FolderError, rt.InputError, rt.PlanError) as e:
        print(f"run.py: error: {e}", file=sys.stderr)
        return 2
    for spec, out in zip(model.manifest["outputs"], outs):
        print(spec["name"], tuple(out.shape), out.dtype)
    if args.outputs:
        np.savez(args.outputs, *[o.numpy() for o in outs])
    return 0


if __name__ == "__main__":
    status = main()
    if status:   # exit only on failure: runpy.run_path("run.py", run_name="__main__") callers keep going
        sys.exit(status)
'''
