"""ShardedModel.export(dir): one folder per rank (each collective-free segment an ordinary exported folder,
plus the rank's step list), a top-level manifest (world size, plan, export id, sha256 of every file) and
run_distributed.py, which `torchrun --nproc-per-node N` starts; a rank's folder then runs with TVM's runtime,
numpy and torch.distributed - no attncc."""
from __future__ import annotations

import json
import os
import shutil
import uuid

from ..backends.core.folder_checks import sha256_file as _sha256
from .errors import DistributedError

HERE = os.path.dirname(os.path.abspath(__file__))


def _rank_steps(model) -> list[dict]:
    from ..ir.segments import CollectiveStep

    steps = []
    for i, step in enumerate(model.steps):
        if isinstance(step, CollectiveStep):
            op = step.node.op
            entry = {"kind": "collective", "node": step.node.name, "op": op.op_name, "attrs": _plain(op.attrs()),
                     "inputs": step.inputs, "outputs": step.outputs}
            if op.op_name in ("Send", "Recv"):
                entry["peer"] = model.program.peer(model.rank, op.peer_stage)
            else:
                entry["members"] = model.program.group_ranks(model.rank, op.group)
            if op.op_name == "Recv":
                entry["dtype"] = step.node.outputs[0].dtype
            steps.append(entry)
        else:
            steps.append({"kind": "segment", "folder": f"segment{i}", "inputs": step.inputs, "outputs": step.outputs})
    return steps


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def _checks_source() -> str:
    """The exported runtime's file checks (standard library only), shared with every exported folder."""
    from ..backends.core import folder_checks

    return folder_checks.__file__


def export_sharded(model, directory: str) -> list[str]:
    """Write this rank's folder `directory/rank<r>/`; after a barrier rank 0 writes the top-level
    manifest.json (hashing every rank's files) and run_distributed.py. Call on every rank."""
    dist = model.dist
    rank_dir = os.path.join(directory, f"rank{model.rank}")
    os.makedirs(rank_dir, exist_ok=True)
    export_id = [uuid.uuid4().hex if model.rank == 0 else None]
    if dist.get_world_size() > 1:
        dist.broadcast_object_list(export_id, src=0)
    files = []
    for i, step in enumerate(model.steps):
        if model.compiled[i] is not None:
            files += model.compiled[i].export(os.path.join(rank_dir, f"segment{i}"))
    groups = [list(m) for m in model.groups.groups]
    rank_manifest = {"export_id": export_id[0], "rank": model.rank, "world_size": model.program.world_size,
                     "target": model.target, "groups": groups, "steps": _rank_steps(model),
                     "graph_outputs": [v.name for v in model.graph.outputs]}
    path = os.path.join(rank_dir, "rank.json")
    with open(path, "w") as f:
        json.dump(rank_manifest, f, indent=2)
    files.append(path)
    if dist.get_world_size() > 1:
        dist.barrier()
    if model.rank == 0:
        manifest = {"format": "attncc-sharded-1", "export_id": export_id[0], "target": model.target,
                    "backend": "nccl" if model.target.split(":")[0] == "cuda" else "gloo",
                    **model.program.manifest(), "files": {}}
        for r in range(model.program.world_size):
            root = os.path.join(directory, f"rank{r}")
            if not os.path.isdir(root):
                raise DistributedError(f"export: rank {r}'s folder {root} is missing (ranks on other machines write "
                                       "their own folders: export to a shared filesystem)")
            for folder, _, names in sorted(os.walk(root)):
                for name in sorted(names):
                    full = os.path.join(folder, name)
                    manifest["files"][os.path.relpath(full, directory)] = _sha256(full)
        for name, source in (("run_distributed.py", os.path.join(HERE, "run_distributed_template.py")),
                             ("attncc_collectives.py", os.path.join(HERE, "collectives.py")),
                             ("attncc_checks.py", _checks_source())):
            shutil.copyfile(source, os.path.join(directory, name))
            manifest["files"][name] = _sha256(os.path.join(directory, name))
        with open(os.path.join(directory, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
        files += [os.path.join(directory, n) for n in ("manifest.json", "run_distributed.py", "attncc_collectives.py",
                                                        "attncc_checks.py")]
    if dist.get_world_size() > 1:
        dist.barrier()
    return files
