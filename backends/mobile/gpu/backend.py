"""The `mobile-gpu` target: the shared core (backends/core) with the OpenCL plugin, built per input shape,
run through pyopencl (TVM's wheel has no OpenCL runtime), exported as OpenCL C + plan + launch table.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ....ir import Graph, graph_from_json
from ...base import Executable
from ...core.backend import PLANS_INDEX, TvmBackend
from ...core.cache import CompileCache, cache_key
from ...core.builder import build_plan
from ...core.plan import Plan
from ...core.program import Program, decompose_variants
from .compile import OpenClLibrary, compile_opencl
from .executor import OpenClRunner
from .plugin import MobileGpuPlugin

PER_SHAPE = "mobile-gpu builds once per input shape (kernel launch sizes are fixed at compile time)"


class GpuProgram(Program):
    """Program whose builds are OpenCL libraries run by `OpenClRunner`; always per input shape."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.generic_failed = PER_SHAPE
        if self.symbolic and PER_SHAPE not in self.notes:
            self.notes.append(PER_SHAPE)

    def _runner(self, slot, shapes: tuple, generic: bool):
        key = cache_key(self.graph, self.target, self.options, shapes, self.plugin.name)
        use_cache = self.options.get("cache", True)
        entry = self.cache.get_memory(key) if use_cache else None
        if entry is None and use_cache:
            disk = self.cache.load_disk(key, self.plugin.name)
            if disk is not None:
                entry = self._from_disk(*disk)
                self.cache.stats.disk_hits += 1
        if entry is None:
            self.cache.stats.misses += 1
            self.builds += 1
            plan, _ = build_plan(self.graph, shapes, self.target, self.options, self.plugin, generic=False)
            lib = compile_opencl(plan, self.target)
            entry = (plan, lib, None)
            if use_cache:   # OpenClLibrary.export_library writes its JSON form as the entry's library file
                self.cache.save_disk(key, plan.to_json(), lib, self.plugin.name)
        if use_cache:
            self.cache.put_memory(key, entry)
        plan, lib, lib_path = entry
        runner = self._bind(plan, lib, lib_path)
        for n in plan.notes:
            if n not in self.notes:
                self.notes.append(n)
        self.runners[slot], self.keys[slot] = runner, key
        return runner

    def _from_disk(self, plan_json: str, lib_path: str | None):
        return Plan.from_json(plan_json), (OpenClLibrary.load(lib_path) if lib_path else None), lib_path

    def _bind(self, plan: Plan, lib, library_path: str | None = None):
        from ...core.groups import materialize_constant
        from ...core.attention import reference_callable

        used = set(plan.outputs) | {a[0] for s in plan.steps for a in s.get("args", []) if a[0] != Plan.DIM}
        used |= {s[k][0] for s in plan.steps if s["kind"] == "attention" for k in ("q", "k", "v", "mask", "out") if s.get(k)}
        used |= {n for s in plan.steps if s["kind"] == "reference" for n in s["inputs"]}
        used |= {plan.values[n]["base"] for n in list(used) if plan.values[n]["storage"] == "view"}
        consts = {name: materialize_constant(plan, self.graph.constants, name, self.plugin.matmul)
                  for name, info in plan.values.items() if info["storage"] == "const" and name in used}
        nodes = {n.name: n for n in self.graph.nodes}
        refs = {i: reference_callable(nodes[s["node"]]) for i, s in enumerate(plan.steps) if s["kind"] == "reference"}
        runner = _LazyRunner(plan, lib, consts, refs)
        runner.library_path = library_path
        return runner


class _LazyRunner:
    """Holds a build; opens the OpenCL device only at the first call (compiling and exporting need none)."""

    def __init__(self, plan, lib, consts, refs):
        self.plan, self.lib, self._consts, self._refs = plan, lib, consts, refs
        self._persistent = consts          # what Program.constants_of reads
        self.library_path = None
        self._runner: OpenClRunner | None = None

    def __call__(self, inputs, as_torch: bool = False):
        if self._runner is None:
            self._runner = OpenClRunner(self.plan, self.lib, self._consts, self._refs)
        return self._runner(inputs, as_torch)


class MobileGpuBackend(TvmBackend):
    """OpenCL for Adreno/Mali-class GPUs: scheduled TE kernels, tiled matmuls, a local-memory flash kernel."""

    def __init__(self, cache: CompileCache | None = None):
        super().__init__(MobileGpuPlugin(), cache)

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        """Lower `graph`; static graphs build now, graphs with symbolic dims once per input shape at call."""
        options = dict(options or {})
        graph = decompose_variants(graph)
        target = self.target(options)
        notes: list[str] = list(self.plugin.prepare_runtime(target))
        program = GpuProgram(graph, target, options, self.cache, notes, self.plugin)
        if all(isinstance(d, int) for v in graph.inputs for d in v.shape):
            program.runner_for(tuple(tuple(v.shape) for v in graph.inputs))
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)

    def export(self, executable: Executable, directory: str) -> list[str]:
        """The core's folder (graph, plans index, plan_<i>.json, constants_<i>.npz) with each build's library
        as kernels_<i>.json (launch table + source) and its OpenCL C as kernels_<i>.cl; run.py uses pyopencl."""
        files = super().export(executable, directory)
        with open(os.path.join(directory, PLANS_INDEX)) as f:
            index = json.load(f)
        for entry in index["plans"]:
            if not entry.get("library"):
                continue
            old = os.path.join(directory, entry["library"])
            new = old[:-3] + ".json" if old.endswith(".so") else old
            if new != old:
                os.replace(old, new)
                files[files.index(old)] = new
                entry["library"] = os.path.basename(new)
            lib = OpenClLibrary.load(new)
            cl_path = new[:-5] + ".cl"
            with open(cl_path, "w") as f:
                f.write(lib.source)
            files.append(cl_path)
        with open(os.path.join(directory, PLANS_INDEX), "w") as f:
            json.dump(index, f, indent=1)
        for name in ("attncc_runtime.py", "run.py"):   # the TVM-runtime runner does not apply to OpenCL builds
            p = os.path.join(directory, name)
            if p in files:
                os.remove(p)
                files.remove(p)
        return files

    def load(self, directory: str) -> Executable:
        """An Executable over an export folder (no recompiling): each build's OpenCL library is read back."""
        with open(os.path.join(directory, "graph.json")) as f:
            graph = graph_from_json(f.read())
        with open(os.path.join(directory, PLANS_INDEX)) as f:
            index = json.load(f)
        notes: list[str] = list(self.plugin.prepare_runtime(index["target"]))
        program = GpuProgram(graph, index["target"], index.get("options", {}), self.cache, notes, self.plugin)
        for entry in index["plans"]:
            with open(os.path.join(directory, entry["plan"])) as f:
                plan = Plan.from_json(f.read())
            lib_path = os.path.join(directory, entry["library"]) if entry["library"] else None
            lib = OpenClLibrary.load(lib_path) if lib_path else None
            program.runners[tuple(tuple(s) for s in entry["shapes"])] = program._bind(plan, lib, lib_path)
            notes.extend(n for n in plan.notes if n not in notes)
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)


__all__ = ["MobileGpuBackend", "GpuProgram"]
