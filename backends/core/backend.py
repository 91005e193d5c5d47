"""The Backend protocol implemented once over the shared core; a target is a `TargetPlugin`.

Static graphs build at `lower`; graphs with symbolic dims build per concrete input shapes at first
call. Every build goes through the compile cache (memory + disk).
"""
from __future__ import annotations

import json
import os
from typing import Any

import tvm

from ...ir import Graph, graph_from_json, graph_to_json
from ..base import Executable
from .cache import GLOBAL_CACHE, CompileCache
from .plan import Plan
from .program import GENERIC, Program, decompose_variants, load_kernels

PLANS_INDEX = "plans.json"


class TvmBackend:
    """The Backend protocol over the shared core for one target plugin (see plugin.py)."""

    def __init__(self, plugin, cache: CompileCache | None = None):
        self.plugin = plugin
        self.name, self.description, self.hardware = plugin.name, plugin.description, plugin.hardware
        self.capabilities = plugin.capabilities
        self.cache = cache or GLOBAL_CACHE

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
        graph = decompose_variants(graph)
        target = self.target(options)
        notes: list[str] = list(self.plugin.prepare_runtime(target))
        program = Program(graph, target, options, self.cache, notes, self.plugin)
        static = all(isinstance(d, int) for v in graph.inputs for d in v.shape)
        if static:
            program.runner_for(tuple(tuple(v.shape) for v in graph.inputs))
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)

    def export(self, executable: Executable, directory: str) -> list[str]:
        """Write graph.json, plans.json and per shape `kernels_<i>.so` + `attention_<i>_<step>.so`
        (each attention kernel's library; its kind and schedule are in plans.json)."""
        program: Program = executable.artifacts["program"]
        os.makedirs(directory, exist_ok=True)
        files = []
        gpath = os.path.join(directory, "graph.json")
        with open(gpath, "w") as f:
            f.write(graph_to_json(program.graph))
        files.append(gpath)
        index = []
        for i, (shapes, runner) in enumerate(program.runners.items()):
            entry = {"shapes": GENERIC if shapes == GENERIC else [list(s) for s in shapes],
                     "plan": f"plan_{i}.json", "library": None}
            ppath = os.path.join(directory, entry["plan"])
            with open(ppath, "w") as f:
                f.write(runner.plan.to_json())
            files.append(ppath)
            if runner.lib is not None:
                entry["library"] = f"kernels_{i}.so"
                runner.lib.export_library(os.path.join(directory, entry["library"]))
                files.append(os.path.join(directory, entry["library"]))
            for step_index, kernel in runner.kernels.items():
                if hasattr(kernel, "export_library") and hasattr(kernel, "metadata"):
                    name = f"attention_{i}_{step_index}.so"
                    kernel.export_library(os.path.join(directory, name))
                    files.append(os.path.join(directory, name))
                    entry.setdefault("attention", {})[str(step_index)] = {"library": name, **kernel.metadata()}
            index.append(entry)
        ipath = os.path.join(directory, PLANS_INDEX)
        with open(ipath, "w") as f:
            json.dump({"target": program.target, "options": {k: v for k, v in program.options.items()
                                                             if isinstance(v, (str, int, float, bool))},
                       "plans": index}, f, indent=1)
        files.append(ipath)
        return files

    def load(self, directory: str) -> Executable:
        """Rebuild an Executable from `export` output without recompiling: group and attention kernels are
        loaded from their libraries (an attention library that is missing or fails to load is rebuilt)."""
        with open(os.path.join(directory, "graph.json")) as f:
            graph = graph_from_json(f.read())
        with open(os.path.join(directory, PLANS_INDEX)) as f:
            index = json.load(f)
        notes: list[str] = []
        notes.extend(self.plugin.prepare_runtime(self.target({})))  # this host, which may differ from the exporter
        program = Program(graph, index["target"], index.get("options", {}), self.cache, notes, self.plugin)
        for entry in index["plans"]:
            with open(os.path.join(directory, entry["plan"])) as f:
                plan = Plan.from_json(f.read())
            lib = tvm.runtime.load_module(os.path.join(directory, entry["library"])) if entry["library"] else None
            shapes = GENERIC if entry["shapes"] == GENERIC else tuple(tuple(s) for s in entry["shapes"])
            attention = {int(step): (os.path.join(directory, meta["library"]), meta)
                         for step, meta in entry.get("attention", {}).items()}
            program.runners[shapes] = program._bind(plan, lib, load_kernels(plan, program.target, attention, self.plugin))
            notes.extend(n for n in plan.notes if n not in notes)
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)


__all__ = ["TvmBackend"]
