"""The `cpu` target: whole IR graphs lowered to scheduled TVM kernels for the host CPU (LLVM).

Non-attention ops are fused into small groups (fusion.py), each defined in TE and given a
real schedule (packed register-tiled matmuls, vectorized parallel elementwise and row
kernels); Attention ops run the hand-scheduled flash kernels (backends/cpu/attention) or a
noted fallback. All group kernels of a graph build into ONE library; a Python-side runner
(lower/runner.py) calls them over preallocated buffers — not a Relax VM, because the
attention kernels are built and called as separate objects.

Shapes: a graph with symbolic dims compiles per concrete input shapes at first call;
every build goes through the compile cache (memory + disk).
"""
from __future__ import annotations

import json
import os
from typing import Any, Sequence

import tvm

from ...ir import Graph, graph_from_json, graph_to_json
from ...ir.passes import run_pipeline
from ..base import Capabilities, Executable
from .cache import GLOBAL_CACHE, CompileCache, cache_key
from .lower.attention import reference_callable
from .lower.builder import build_plan, compile_funcs
from .lower.errors import CpuLoweringError
from .lower.groups import materialize_constant
from .lower.plan import Plan
from .lower.runner import PlanRunner
from .target import ensure_thread_pool, host_dtypes, host_target, vector_width_bits


def _shape_of(x: Any) -> tuple:
    return tuple(int(d) for d in (x.shape if hasattr(x, "shape") else __import__("numpy").asarray(x).shape))


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


class CpuProgram:
    """A graph lowered for the host CPU: one PlanRunner per input-shape signature, built on demand."""

    def __init__(self, graph: Graph, target: dict, options: dict, cache: CompileCache, notes: list[str]):
        self.graph, self.target, self.options, self.cache, self.notes = graph, target, options, cache, notes
        self.runners: dict[tuple, PlanRunner] = {}
        self.keys: dict[tuple, str] = {}

    def runner_for(self, shapes: tuple) -> PlanRunner:
        """The runner for these input shapes: memory cache, then disk cache, then a fresh build."""
        if shapes in self.runners:
            return self.runners[shapes]
        key = cache_key(self.graph, self.target, self.options, shapes)
        use_cache = self.options.get("cache", True)
        entry = self.cache.get_memory(key) if use_cache else None
        if entry is None and use_cache:
            disk = self.cache.load_disk(key)
            if disk is not None:
                entry = self._from_disk(*disk)
                self.cache.stats.disk_hits += 1
        if entry is None:
            self.cache.stats.misses += 1
            plan, kernels, _ = build_plan(self.graph, shapes, self.target, self.options)
            lib = compile_funcs(plan, self.target)
            entry = (plan, lib, kernels)
            if use_cache:
                self.cache.save_disk(key, plan.to_json(), lib, kernels)
        if use_cache:
            self.cache.put_memory(key, entry)
        plan, lib, kernels = entry
        runner = self._bind(plan, lib, kernels)
        for n in plan.notes:
            if n not in self.notes:
                self.notes.append(n)
        self.runners[shapes], self.keys[shapes] = runner, key
        return runner

    def _bind(self, plan: Plan, lib, kernels) -> PlanRunner:
        used = set(plan.outputs) | {a[0] for s in plan.steps for a in s.get("args", [])}
        used |= {s[k][0] for s in plan.steps if s["kind"] == "attention" for k in ("q", "k", "v", "mask", "out") if s.get(k)}
        used |= {n for s in plan.steps if s["kind"] == "reference" for n in s["inputs"]}
        used |= {plan.values[n]["base"] for n in list(used) if plan.values[n]["storage"] == "view"}
        consts = {name: materialize_constant(plan, self.graph.constants, name)
                  for name, info in plan.values.items() if info["storage"] == "const" and name in used}
        nodes = {n.name: n for n in self.graph.nodes}
        refs = {i: reference_callable(nodes[s["node"]]) for i, s in enumerate(plan.steps) if s["kind"] == "reference"}
        return PlanRunner(plan, lib, consts, kernels, refs)

    def _from_disk(self, plan_json: str, lib_path: str | None, attention_files: dict):
        plan = Plan.from_json(plan_json)
        lib = tvm.runtime.load_module(lib_path) if lib_path else None
        return plan, lib, load_kernels(plan, self.target, attention_files)

    def __call__(self, inputs: Sequence[Any]) -> list[Any]:
        shapes = tuple(_shape_of(x) for x in inputs)
        runner = self.runner_for(shapes)
        return runner(inputs, as_torch=bool(inputs) and all(_is_torch(x) for x in inputs))


def load_kernels(plan: Plan, target: dict, files: dict[int, tuple[str, dict]]) -> dict[int, Any]:
    """Attention kernels of a stored plan: loaded from their stored libraries (`files`: step -> (path,
    metadata)), each one whose file is missing or fails to load rebuilt from its recorded config instead."""
    from .attention import AttentionKernelConfig, build_attention_kernel, load_attention_kernel

    kernels = {}
    for i, s in enumerate(plan.steps):
        if s["kind"] != "attention":
            continue
        cfg = AttentionKernelConfig(**s["config"])
        if i in files:
            try:
                kernels[i] = load_attention_kernel(files[i][0], cfg, target, files[i][1])
                continue
            except Exception:  # noqa: BLE001 - a missing/stale/corrupt library only costs a rebuild
                pass
        kernels[i] = build_attention_kernel(cfg, target=target)
    return kernels


def rebuild_kernels(plan: Plan, target: dict) -> dict[int, Any]:
    """Attention kernels of a stored plan, rebuilt from their recorded configs."""
    return load_kernels(plan, target, {})


# variant features -> plain Attention + IR ops, then clean up what the rewrites leave behind (constant-fold
# pre-lays out weights the rewrites transpose, e.g. MLA's per-head W_uk / W_uv, once at compile time)
DECOMPOSE_PIPELINE = "decompose-variants,constant-fold,canonicalize,dce"


def decompose_variants(graph: Graph) -> Graph:
    """The graph with variant-feature Attention ops rewritten for the flash kernels (a copy; `graph` is unchanged).

    Runs here, not in the default pipeline, so the cost report and tiling still see the features. Nodes the
    pass cannot rewrite keep their features (the host-reference fallback; its note gives the pass's reason).
    """
    if not any(n.op.spec.features_list() for n in graph.nodes if n.op.op_name == "Attention"):
        return graph
    return run_pipeline(graph, DECOMPOSE_PIPELINE)


class CpuBackend:
    """Host CPU through TVM/LLVM: fused scheduled kernels + flash attention, fp32 and bf16."""

    name = "cpu"
    description = "host CPU through TVM/LLVM (x86-64 AVX2/AVX-512)"
    hardware = "host-cpu"

    def __init__(self, cache: CompileCache | None = None):
        self.cache = cache or GLOBAL_CACHE
        self.capabilities = Capabilities(vector_width_bits=vector_width_bits(), on_chip_bytes=48 * 1024,
                                         second_level_bytes=2 * 1024 * 1024, tensor_cores=False,
                                         dtypes=host_dtypes(), runs_here=True)

    def target(self, options: dict[str, Any] | None = None) -> dict:
        """The LLVM target: the host's, or options["mcpu"] / options["num_cores"] when given."""
        options = options or {}
        return host_target(options.get("mcpu"), options.get("num_cores"))

    def lower(self, graph: Graph, options: dict[str, Any]) -> Executable:
        """Lower `graph`; static graphs build now, graphs with symbolic dims build per shape at first call.

        Options: cache (bool, default True), attention ("auto" | "generic"), mcpu, num_cores.
        Variant features are first decomposed into plain Attention + IR ops (`decompose_variants`).
        """
        options = dict(options or {})
        notes: list[str] = []
        graph = decompose_variants(graph)
        target = self.target(options)
        threads = ensure_thread_pool(target["num-cores"])
        if threads < target["num-cores"]:
            notes.append(f"TVM's thread pool has {threads} thread(s) for {target['num-cores']} cores: it was created "
                         f"before attncc could size it; set TVM_NUM_THREADS={target['num-cores']} before starting")
        program = CpuProgram(graph, target, options, self.cache, notes)
        static = all(isinstance(d, int) for v in graph.inputs for d in v.shape)
        if static:
            program.runner_for(tuple(tuple(v.shape) for v in graph.inputs))
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)

    def export(self, executable: Executable, directory: str) -> list[str]:
        """Write graph.json, cpu_plans.json and per shape `kernels_<i>.so` + `attention_<i>_<step>.so`
        (each attention kernel's library; its kind and schedule are in cpu_plans.json)."""
        program: CpuProgram = executable.artifacts["program"]
        os.makedirs(directory, exist_ok=True)
        files = []
        gpath = os.path.join(directory, "graph.json")
        with open(gpath, "w") as f:
            f.write(graph_to_json(program.graph))
        files.append(gpath)
        index = []
        for i, (shapes, runner) in enumerate(program.runners.items()):
            entry = {"shapes": [list(s) for s in shapes], "plan": f"plan_{i}.json", "library": None}
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
        ipath = os.path.join(directory, "cpu_plans.json")
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
        with open(os.path.join(directory, "cpu_plans.json")) as f:
            index = json.load(f)
        notes: list[str] = []
        ensure_thread_pool()  # this host's cores, which may differ from the exporting one's
        program = CpuProgram(graph, index["target"], index.get("options", {}), self.cache, notes)
        for entry in index["plans"]:
            with open(os.path.join(directory, entry["plan"])) as f:
                plan = Plan.from_json(f.read())
            lib = tvm.runtime.load_module(os.path.join(directory, entry["library"])) if entry["library"] else None
            shapes = tuple(tuple(s) for s in entry["shapes"])
            attention = {int(step): (os.path.join(directory, meta["library"]), meta)
                         for step, meta in entry.get("attention", {}).items()}
            program.runners[shapes] = program._bind(plan, lib, load_kernels(plan, program.target, attention))
            notes.extend(n for n in plan.notes if n not in notes)
        return Executable(run=program, backend=self.name, artifacts={"graph": graph, "program": program},
                          notes=notes, accepts_torch=True)


__all__ = ["CpuBackend", "CpuLoweringError", "CpuProgram", "decompose_variants"]
