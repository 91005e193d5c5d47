"""A lowered graph for one target: input shapes -> PlanRunner (memory cache, disk cache, fresh build).

Target-neutral; the plugin supplies the TVM target, schedules, matmul strategy and attention kernels.
"""
from __future__ import annotations

from typing import Any, Sequence

from ...ir import Graph
from ...ir.passes import run_pipeline
from ...ir.passes.decompose_variants import kernel_computes
from ...ir.passes.pipelines import DECOMPOSE
from .cache import CompileCache, cache_key
from .errors import lowering_for
from .notes import REJECTION, LoweringNote
from .fused_attention import split_fused_attention
from .plan import Plan, materialize_constant
from .runner import PlanRunner


def _shape_of(x: Any) -> tuple:
    return tuple(map(int, x.shape if hasattr(x, "shape") else __import__("numpy").asarray(x).shape))


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


GENERIC = "generic"   # the runners key of a shape-generic build


class Program:
    """A graph lowered for one target, built on demand at the first call.

    A graph with symbolic input dims gets ONE shape-generic build (kernels read their sizes from their
    arguments) that serves every size; when that build is impossible (a dim no input names, a kernel that
    needs a static size) the reason is noted and each input-shape signature gets its own build, as for
    static graphs. `options["shape_generic"] = False` asks for per-shape builds.
    """

    def __init__(self, graph: Graph, target: dict, options: dict, cache: CompileCache, notes: list[str], plugin):
        self.graph, self.target, self.options, self.cache, self.notes = graph, target, options, cache, notes
        self.plugin = plugin
        self.runners: dict[Any, PlanRunner] = {}
        self.keys: dict[Any, str] = {}
        self.symbolic = any(isinstance(d, str) for v in graph.inputs for d in v.shape)
        self.generic_failed: str | None = None if options.get("shape_generic", True) else "disabled by options"
        if plugin.per_shape_reason:   # e.g. mobile-gpu: launch sizes are fixed at compile time
            self.generic_failed = plugin.per_shape_reason
            if self.symbolic and plugin.per_shape_reason not in notes:
                notes.append(plugin.per_shape_reason)
        self.builds = 0   # fresh builds by this program (cache hits not counted)

    def runner_for(self, shapes: tuple) -> PlanRunner:
        """The runner for these input shapes: the generic build, else per-shape (memory, disk, fresh build)."""
        if GENERIC in self.runners:
            return self.runners[GENERIC]
        if shapes in self.runners:
            return self.runners[shapes]
        if self.symbolic and self.generic_failed is None:
            try:
                return self._runner(GENERIC, shapes, generic=True)
            except Exception as e:  # noqa: BLE001 - any generic-build failure falls back to per-shape builds
                self.generic_failed = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                self.notes.append(LoweringNote(None, REJECTION, f"shape-generic build not possible ({self.generic_failed}); "
                                               "building once per input shape instead"))
        return self._runner(shapes, shapes, generic=False)

    def _runner(self, slot, shapes: tuple, generic: bool) -> PlanRunner:
        with lowering_for(self.plugin.name):
            return self._build_or_load(slot, shapes, generic)

    def _build_or_load(self, slot, shapes: tuple, generic: bool) -> PlanRunner:
        signature = [list(v.shape) for v in self.graph.inputs] if generic else shapes
        key = cache_key(self.graph, self.target, self.options, signature, self.plugin.name)
        use_cache = self.options.get("cache", True)
        entry = self.cache.get_memory(key) if use_cache else None
        runner = None
        if entry is None and use_cache:
            disk = self.cache.load_disk(key, self.plugin.name)
            if disk is not None:
                try:   # an entry whose files check out but that does not load or bind is rebuilt, never run
                    entry = self._from_disk(*disk)
                    runner = self._bind(*entry)
                except Exception as e:  # noqa: BLE001 - any failure of a cached entry: rebuild it (warned)
                    entry = runner = None
                    self.cache.discard(key, self.plugin.name, f"{type(e).__name__}: {str(e).strip()[:200]}")
                else:
                    self.cache.stats.disk_hits += 1
        if entry is None:
            self.cache.stats.misses += 1
            self.builds += 1
            from .builder import build_plan   # TVM and its compiler: only a build imports them

            plan, _ = build_plan(self.graph, shapes, self.target, self.options, self.plugin, generic=generic)
            lib = self.plugin.build_library(plan, self.target)
            entry = (plan, lib, None)
            if use_cache:
                self.cache.save_disk(key, plan.to_json(), lib, self.plugin.name, write=self.plugin.save_library)
        if use_cache:
            self.cache.put_memory(key, entry)
        plan, lib, lib_path = entry
        runner = runner or self._bind(plan, lib, lib_path)
        for n in plan.notes:
            if n not in self.notes:
                self.notes.append(n)
        self.runners[slot], self.keys[slot] = runner, key
        return runner

    def _bind(self, plan: Plan, lib, library_path: str | None = None) -> PlanRunner:
        """A runner over `lib`; `library_path` is the file a loaded `lib` came from (TVM cannot re-export a
        loaded library, so `export` copies that file)."""
        used = set(plan.outputs) | {a[0] for s in plan.steps for a in s.get("args", []) if a[0] != Plan.DIM}
        used |= {s[k][0] for s in plan.steps if s["kind"] == "attention" for k in ("q", "k", "v", "mask", "out") if s.get(k)}
        used |= {n for s in plan.steps if s["kind"] == "reference" for n in s["inputs"]}
        used |= {plan.values[n]["base"] for n in list(used) if plan.values[n]["storage"] == "view"}
        consts = {name: materialize_constant(plan, self.graph.constants, name, self.plugin.matmul)
                  for name, info in plan.values.items() if info["storage"] == "const" and name in used}
        nodes = {n.name: n for n in self.graph.nodes}
        refs = {}
        if any(s["kind"] == "reference" for s in plan.steps):   # attention run by the numpy reference (noted)
            from .attention import reference_callable

            refs = {i: reference_callable(nodes[s["node"]]) for i, s in enumerate(plan.steps) if s["kind"] == "reference"}
        return self.plugin.make_runner(plan, lib, consts, refs, library_path)

    def constants_of(self, runner: PlanRunner) -> dict:
        """The (repacked) constants a runner was bound with, by plan value name."""
        plan = runner.plan
        return {name: materialize_constant(plan, self.graph.constants, name, self.plugin.matmul)
                for name, info in plan.values.items() if info["storage"] == "const" and name in runner._persistent}

    def _from_disk(self, plan_json: str, lib_path: str | None):
        plan = Plan.from_json(plan_json)
        lib = self.plugin.load_library(lib_path) if lib_path else None
        return plan, lib, lib_path

    def __call__(self, inputs: Sequence[Any]) -> list[Any]:
        # a shape-generic build serves every shape: no need to read them (Python time on every call)
        runner = self.runners.get(GENERIC) or self.runner_for(tuple(_shape_of(x) for x in inputs))
        with lowering_for(self.plugin.name):
            return runner(inputs, as_torch=bool(inputs) and all(_is_torch(x) for x in inputs))


DECOMPOSE_PIPELINE = DECOMPOSE   # ir/passes/pipelines.py: every pipeline is defined there


def decompose_variants(graph: Graph, keep: tuple[str, ...] = ()) -> Graph:
    """The graph with variant-feature Attention ops rewritten for the flash kernels (a copy; `graph` is unchanged).

    Runs here, not in the default pipeline, so the cost report and tiling still see the features. Nodes the
    pass cannot rewrite keep their features (the host-reference fallback; its note gives the pass's reason).
    `keep`: score-mod kinds the target's kernels compute (Capabilities.kernel_score_mods), left on the op.
    """
    graph = split_fused_attention(graph)   # FusedAttention: attention kernel + projection matmul
    if not any(n.op.spec.features_list() and not kernel_computes(n.op.spec, keep)
               for n in graph.nodes if n.op.op_name == "Attention"):
        return graph
    first, rest = DECOMPOSE_PIPELINE.split(",", 1)
    pipeline = f"{first}{{keep={'+'.join(keep)}}},{rest}" if keep else DECOMPOSE_PIPELINE
    return run_pipeline(graph, pipeline)
