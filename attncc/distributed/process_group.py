"""The process group a sharded model runs on: the one the user initialised, or one attncc initialises from
torchrun's environment (gloo for cpu, NCCL for cuda), and the sub-groups of a shard plan."""
from __future__ import annotations

import datetime
import os

from .errors import DistributedError

# seconds a collective waits for its peers before failing (a dead or raising rank never hangs the others)
DEFAULT_TIMEOUT_S = float(os.environ.get("ATTNCC_DIST_TIMEOUT", "120"))


def backend_for(target: str) -> str:
    """torch.distributed backend for an attncc target: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if target.split(":")[0] == "cuda" else "gloo"


def ensure_process_group(target: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S):
    """Return torch.distributed after making sure a default process group exists: the one already initialised,
    or a new one from torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return dist
    missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise DistributedError(
            f"parallel= needs a torch.distributed process group: none is initialised and {', '.join(missing)} "
            "is not set. Start the script with `torchrun --nproc-per-node N script.py`, call "
            "torch.distributed.init_process_group first, or use attncc.distributed.launch(fn, world_size=N)")
    dist.init_process_group(backend_for(target), timeout=datetime.timedelta(seconds=timeout_s))
    return dist


class PlanGroups:
    """torch.distributed sub-groups for every collective group of a sharded program, created in the same order
    on every rank (new_group is itself collective over the whole world)."""

    def __init__(self, program, dist):
        self.dist = dist
        self.groups: dict[tuple[int, ...], object] = {}
        for kind in ("tp", "ep", "tp*ep"):
            for rank in range(program.world_size):
                members = tuple(program.group_ranks(rank, kind))
                if members not in self.groups:
                    self.groups[members] = dist.new_group(list(members)) if len(members) > 1 else None

    def get(self, members: list[int]):
        return self.groups[tuple(members)]
