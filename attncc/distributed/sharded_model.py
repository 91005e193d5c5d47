"""compile_sharded / ShardedModel: this rank's shard of a model, built through the ordinary backend core,
called with the full inputs and returning the full outputs on every rank, as the unsharded model would."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..ir import Graph
from ..ir.passes import run_pipeline
from ..ir.passes.shard import shard_graph
from ..ir.segments import CollectiveStep, ComputeSegment, split_at_collectives
from .collectives import gather_outputs, run_collective
from .errors import DistributedError
from .process_group import PlanGroups, ensure_process_group

PLAN_KEYS = ("tp", "ep", "pp", "dp")


def parse_plan(parallel: dict) -> dict[str, int]:
    """{"tp":.., "ep":.., "pp":.., "dp":..} with defaults 1; unknown keys or non-positive sizes are errors."""
    unknown = set(parallel) - set(PLAN_KEYS) - {"sequence_parallel", "data_parallel_attention"}
    if unknown:
        raise DistributedError(f"parallel: unknown key(s) {sorted(unknown)}; supported: {', '.join(PLAN_KEYS)}, "
                               "sequence_parallel, data_parallel_attention")
    plan = {k: parallel.get(k, 1) for k in PLAN_KEYS}
    for k, n in plan.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise DistributedError(f"parallel: {k} must be an integer >= 1, got {n!r}")
    if plan["dp"] != 1:
        raise DistributedError("parallel: dp > 1 runs whole replicas on other requests: start one job per replica "
                               "(attncc prices dp; it does not batch-split execution)")
    return plan


def split_pipeline_at_shard(target: str, options: dict) -> tuple[str, str]:
    """The target's default pipeline cut before fuse-qkv: the lifting half runs on the whole graph before the
    shard pass (which splits unpacked projections and lifted MLA), the rest on each rank's segments."""
    from .. import pipelines

    passes = pipelines.split_pipeline(pipelines.default_pipeline(target, options))
    i = passes.index("fuse-qkv") if "fuse-qkv" in passes else len(passes)
    return ",".join(passes[:i]), ",".join(passes[i:])


def compile_segment(graph: Graph, target: str, options: dict, strict: bool, pipeline: str):
    """One collective-free segment through `pipeline` and the target's backend: a CompiledModel."""
    from ..api import analyze
    from ..backends import get_backend
    from ..compiled import CompiledModel

    backend = get_backend(target)
    optimized = run_pipeline(graph, pipeline) if pipeline else graph
    executable = backend.lower(optimized, dict(options or {}))
    cm = CompiledModel(optimized, executable, target, pipeline, backend.hardware, source_graph=graph, strict=strict,
                       price=analyze)
    cm.check_fallbacks()
    return cm


def compile_sharded(model: Any, example_inputs: Any = None, target: str = "cpu", parallel: dict | None = None,
                    options: dict | None = None, dynamic_shapes: Any = None, strict: bool = False) -> "ShardedModel":
    """Compile this rank's shard of `model` (every rank of the job calls this with the same arguments: SPMD).

    The process group is the one initialised, or one initialised from torchrun's environment (gloo for cpu,
    NCCL for cuda); its world size must equal tp*ep*pp. Rank 0 builds first and the others then find the
    kernels of identical shards in the build cache (same kernels, different weights)."""
    from ..api import import_model

    plan = parse_plan(dict(parallel or {}))
    dist = ensure_process_group(target)
    world = dist.get_world_size()
    needed = plan["tp"] * plan["ep"] * plan["pp"]
    if world != needed:
        raise DistributedError(f"parallel={plan} needs {needed} ranks (tp*ep*pp) but the process group has {world}: "
                               f"start the job with --nproc-per-node {needed}")
    me = dist.get_rank()
    kwargs = {"dynamic_shapes": dynamic_shapes} if dynamic_shapes is not None else {}
    source = import_model(model, example_inputs, **kwargs)
    extra = {k: bool(parallel[k]) for k in ("sequence_parallel", "data_parallel_attention") if parallel and k in parallel}
    lifting, rest = split_pipeline_at_shard(target, dict(options or {}))
    program = shard_graph(run_pipeline(source, lifting) if lifting else source, plan["tp"], plan["ep"], plan["pp"], 1,
                          **extra)
    steps = split_at_collectives(program.rank_graphs[me])
    groups = PlanGroups(program, dist)
    clock = time.perf_counter()
    # rank 0 first, then the rest: identical shards hit the cache instead of building the same kernels twice
    if me != 0:
        dist.barrier()
    built = [compile_segment(s.graph, target, dict(options or {}), strict, rest) if isinstance(s, ComputeSegment)
             else None for s in steps]
    if me == 0:
        dist.barrier()
    model_ = ShardedModel(program, me, steps, built, dist, groups, target)
    model_.compile_seconds = time.perf_counter() - clock
    return model_


class ShardedModel:
    """This rank's program of a sharded model. Call it on every rank with the full inputs (torch or numpy);
    every rank returns the full outputs (torch tensors)."""

    def __init__(self, program, rank: int, steps: list, compiled: list, dist, groups: PlanGroups, target: str):
        self.program = program
        self.rank = rank
        self.steps = steps
        self.compiled = compiled
        self.dist = dist
        self.groups = groups
        self.target = target
        self.graph = program.rank_graphs[rank]

    @property
    def builds(self) -> int:
        """Fresh kernel builds so far over this rank's segments (cache hits not counted)."""
        return sum(c.executable.artifacts["program"].builds for c in self.compiled
                   if c is not None and "program" in c.executable.artifacts)

    @property
    def plan(self) -> dict[str, int]:
        return dict(self.program.plan)

    def __call__(self, *args):
        import torch

        names = self.program.input_names
        if len(args) != len(names):
            raise TypeError(f"the model takes {len(names)} inputs ({names}), got {len(args)}")
        full = {n: (a if torch.is_tensor(a) else torch.from_numpy(np.asarray(a))) for n, a in zip(names, args)}
        env: dict[str, Any] = dict(self.program.rank_inputs(self.rank, full))
        for i, step in enumerate(self.steps):
            if isinstance(step, CollectiveStep):
                env[step.outputs[0]] = self._collective(step, env)
            else:
                outs = self.compiled[i](*[_contiguous(env[n]) for n in step.inputs])
                outs = outs if isinstance(outs, tuple) else (outs,)
                env.update(zip(step.outputs, outs))
        local = [_contiguous(env[v.name]) for v in self.graph.outputs]
        result = gather_outputs(self.program.output_sources, self.program.output_shards, local, self.rank, self.dist)
        return result[0] if len(result) == 1 else tuple(result)

    def _collective(self, step: CollectiveStep, env: dict):
        node = step.node
        op = node.op
        try:
            if op.op_name in ("Send", "Recv"):
                peer = self.program.peer(self.rank, op.peer_stage)
                x = env[step.inputs[0]] if step.inputs else None
                return run_collective(op, x, self.dist, None, peer=peer)
            members = self.program.group_ranks(self.rank, op.group)
            return run_collective(op, _contiguous(env[step.inputs[0]]), self.dist, self.groups.get(members))
        except Exception as e:  # noqa: BLE001 - name the rank and the collective (a timeout says a peer died)
            raise DistributedError(f"rank {self.rank}: collective {op.op_name} '{node.name}' (group {op.group}) "
                                   f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e

    def export(self, directory: str) -> list[str]:
        """Every rank writes `directory/rank<r>/`; rank 0 adds manifest.json (plan, world size, export id,
        sha256 of every file) and run_distributed.py (`torchrun --nproc-per-node N run_distributed.py
        --inputs in.npz`). Call on every rank; the folder set runs without attncc."""
        from .export import export_sharded

        return export_sharded(self, directory)

    def __repr__(self) -> str:
        return f"ShardedModel(rank={self.rank}, plan={self.plan}, steps={len(self.steps)}, target={self.target!r})"


def _contiguous(x):
    import torch

    if torch.is_tensor(x):
        return x.contiguous()
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
