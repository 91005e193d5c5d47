"""Run sharded models on torch.distributed: one compiled program per rank, collectives by gloo (cpu) or
NCCL (cuda), launched by `torchrun` or, in notebooks and tests, by `launch`.

    cm = attncc.compile(model, (x,), target="cpu", parallel={"tp": 2})   # inside a torchrun job (SPMD)
    y = cm(x)                                                          # full inputs in, full outputs out

The split itself is the `shard` pass (attncc.ir.passes.shard); each rank's graph is cut at its collective
ops (attncc.ir.segments) and every collective-free segment builds through the ordinary backend core.
"""
from .errors import DistributedError
from .launch import launch
from .process_group import ensure_process_group
from .sharded_model import ShardedModel, compile_sharded

__all__ = ["DistributedError", "ShardedModel", "compile_sharded", "ensure_process_group", "launch"]
