"""launch(fn, world_size=N): run `fn` on N local processes with a process group set up (for notebooks and
tests; production jobs use torchrun). Returns rank 0's result; a rank that raises or dies fails the call
with its rank and error, and the others are stopped - never a hang."""
from __future__ import annotations

import datetime
import os
import queue
import shutil
import tempfile
import traceback
from typing import Any, Callable

from .errors import DistributedError
from .process_group import DEFAULT_TIMEOUT_S


def _worker(rank: int, world_size: int, rendezvous: str, backend: str, timeout_s: float, fn: Callable, args: tuple,
            results) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world_size)})
    # the ranks share this machine's cores: one thread pool each of cores / ranks (TVM's and torch's), not
    # world_size pools of every core fighting for them
    share = str(max(1, (os.cpu_count() or 1) // world_size))
    os.environ.setdefault("OMP_NUM_THREADS", share)
    os.environ.setdefault("TVM_NUM_THREADS", share)
    import torch.distributed as dist

    try:
        # torch.distributed's file rendezvous: the ranks meet through a file in a private folder (no port to pick)
        dist.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
        value = fn(*args)
        results.put((rank, "ok", value if rank == 0 else None))
    except BaseException as e:  # noqa: BLE001 - reported to the parent with the rank
        results.put((rank, "error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    finally:
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # noqa: BLE001 - a peer that died leaves nothing to tear down
                pass


def launch(fn: Callable, world_size: int, *args: Any, backend: str = "gloo",
           timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
    """Run `fn(*args)` on `world_size` local processes (spawned, so `fn` must be importable: a module-level
    function) with torch.distributed initialised (`backend`: gloo for CPU, nccl for GPUs); returns rank 0's
    return value. Raises DistributedError naming the first rank that raised or died; collectives waiting on a
    dead peer fail after `timeout_s` seconds."""
    import torch.multiprocessing as mp

    if not isinstance(world_size, int) or world_size < 1:
        raise DistributedError(f"world_size must be an integer >= 1, got {world_size!r}")
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    folder = tempfile.mkdtemp(prefix="attncc-launch-")
    rendezvous = os.path.join(folder, "rendezvous")
    procs = [ctx.Process(target=_worker, args=(r, world_size, rendezvous, backend, timeout_s, fn, args, results),
                         daemon=False) for r in range(world_size)]
    for p in procs:
        p.start()
    outcome: dict[int, tuple[str, Any]] = {}
    deadline = timeout_s * 4 + 600        # a hard stop far beyond any collective timeout
    waited = 0.0
    try:
        while len(outcome) < world_size:
            try:
                rank, status, value = results.get(timeout=1.0)
                outcome[rank] = (status, value)
                if status == "error":
                    break
            except queue.Empty:
                waited += 1.0
                dead = [r for r, p in enumerate(procs) if not p.is_alive() and r not in outcome and p.exitcode]
                if dead:
                    # drain what arrived in the meantime before blaming the dead rank
                    try:
                        while True:
                            rank, status, value = results.get(timeout=0.5)
                            outcome[rank] = (status, value)
                    except queue.Empty:
                        pass
                    if any(s == "error" for s, _ in outcome.values()):
                        break
                    r = dead[0]
                    raise DistributedError(f"rank {r} died (exit code {procs[r].exitcode}) before returning")
                if waited > deadline:
                    raise DistributedError(f"launch: no result after {deadline:.0f} s from ranks "
                                           f"{sorted(set(range(world_size)) - set(outcome))}")
        errors = sorted((r, v) for r, (s, v) in outcome.items() if s == "error")
        if errors:
            r, message = errors[0]
            raise DistributedError(f"rank {r} failed: {message.splitlines()[0]}\n{message}")
        return outcome[0][1]
    finally:
        for p in procs:
            p.join(timeout=timeout_s + 30 if not any(s == "error" for s, _ in outcome.values()) else 5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        shutil.rmtree(folder, ignore_errors=True)
