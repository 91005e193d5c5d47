"""Run an attncc sharded export: `torchrun --nproc-per-node N run_distributed.py [--inputs in.npz] [--out out.npz]
[--check expected.npz]`. Needs TVM's runtime (apache-tvm, apache-tvm-ffi), numpy and torch (for torch.distributed);
not attncc. Every rank checks its files against manifest.json, the world size against the plan and its folder
against the export id before any kernel runs."""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from attncc_checks import sha256_file as _sha256  # noqa: E402  (written beside this script by the export)


class ShardedExportError(RuntimeError):
    """The folder set, the world size or a file does not match the export's manifest."""


def _module(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class RankProgram:
    """This rank's segments (loaded with TVM's runtime) and collectives (torch.distributed)."""

    def __init__(self, folder: str, rank: int, world_size: int):
        try:
            with open(os.path.join(folder, "manifest.json")) as f:
                self.manifest = json.load(f)
        except (OSError, ValueError) as e:
            raise ShardedExportError(f"{os.path.join(folder, 'manifest.json')}: unreadable ({e})") from e
        m = self.manifest
        if m.get("format") != "attncc-sharded-1":
            raise ShardedExportError(f"{folder}: not an attncc sharded export (format {m.get('format')!r})")
        if world_size != m["world_size"]:
            raise ShardedExportError(f"this export was compiled for {m['world_size']} ranks (plan {m['plan']}) but "
                                     f"the job has {world_size}: start it with --nproc-per-node {m['world_size']}")
        prefix = f"rank{rank}{os.sep}"
        for rel, digest in m["files"].items():
            if rel.startswith(prefix) or os.sep not in rel:
                path = os.path.join(folder, rel)
                if not os.path.exists(path):
                    raise ShardedExportError(f"{path}: missing (listed in manifest.json)")
                if _sha256(path) != digest:
                    raise ShardedExportError(f"{path}: sha256 differs from manifest.json (modified or from another "
                                             "export)")
        with open(os.path.join(folder, f"rank{rank}", "rank.json")) as f:
            self.rank_manifest = json.load(f)
        if self.rank_manifest["export_id"] != m["export_id"]:
            raise ShardedExportError(f"rank{rank}/ comes from another export (id {self.rank_manifest['export_id']}, "
                                     f"manifest {m['export_id']})")
        self.rank = rank
        self.collectives = _module("attncc_collectives", os.path.join(folder, "attncc_collectives.py"))
        self.segments = {}
        runtime = None
        for step in self.rank_manifest["steps"]:
            if step["kind"] == "segment":
                seg = os.path.join(folder, f"rank{rank}", step["folder"])
                if runtime is None:                     # every segment folder holds the same runtime files
                    sys.path.insert(0, seg)
                    runtime = _module("attncc_runtime", os.path.join(seg, "attncc_runtime.py"))
                self.segments[step["folder"]] = runtime.load_folder(seg)

    def run(self, dist, groups: dict, inputs: dict) -> list:
        import torch

        env = {}
        for name, (axis, start, stop) in ((k, tuple(v)) for k, v in
                                          self.manifest["ranks"][self.rank]["input_slices"].items()):
            idx = [slice(None)] * inputs[name].ndim
            idx[axis] = slice(start, stop)
            env[name] = np.ascontiguousarray(inputs[name][tuple(idx)])
        for name in self.manifest["ranks"][self.rank]["inputs"]:
            env.setdefault(name, inputs[name])
        for step in self.rank_manifest["steps"]:
            if step["kind"] == "segment":
                outs = self.segments[step["folder"]].run([np.ascontiguousarray(_np(env[n])) for n in step["inputs"]])
                env.update(zip(step["outputs"], [_np(o) for o in outs]))
                continue
            op = type("Op", (), {"op_name": step["op"], **step["attrs"], "dtype": step.get("dtype", "float32")})
            x = torch.from_numpy(np.ascontiguousarray(_np(env[step["inputs"][0]]))) if step["inputs"] else None
            try:
                out = self.collectives.run_collective(op, x, dist, groups.get(tuple(step.get("members", ()))),
                                                      peer=step.get("peer"))
            except Exception as e:  # noqa: BLE001 - name the rank and the collective
                raise RuntimeError(f"rank {self.rank}: collective {step['op']} '{step['node']}' failed: {e}") from e
            env[step["outputs"][0]] = out.numpy()
        return [env[n] for n in self.rank_manifest["graph_outputs"]]


def _np(x):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


def main(argv=None) -> int:
    import torch.distributed as dist

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", help=".npz with the model's inputs by name (default: random inputs of the "
                                     "manifest's static shapes)")
    ap.add_argument("--out", help="rank 0 writes the outputs here (.npz)")
    ap.add_argument("--check", help=".npz of expected outputs; rank 0 prints the max abs difference and exits 1 "
                                    "above --tol")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds a collective waits for its peers")
    args = ap.parse_args(argv)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    program = RankProgram(HERE, rank, world)           # checks before the group forms and before any kernel runs
    dist.init_process_group(program.manifest["backend"], timeout=datetime.timedelta(seconds=args.timeout))
    groups = {tuple(m): (dist.new_group(m) if len(m) > 1 else None) for m in program.rank_manifest["groups"]}
    if args.inputs:
        data = np.load(args.inputs)
        inputs = {name: data[name] for name in program.manifest["inputs"]}
    else:
        raise SystemExit("run_distributed.py: error: --inputs in.npz is required (the model's inputs by name: "
                         f"{program.manifest['inputs']})")
    import torch

    local = [torch.from_numpy(np.ascontiguousarray(a)) for a in program.run(dist, groups, inputs)]
    m = program.manifest
    shards = {int(i): (s["axis"], s["blocks"]) for i, s in m["output_shards"].items()}
    outs = [o.numpy() for o in program.collectives.gather_outputs([(o["rank"], o["index"]) for o in m["outputs"]],
                                                                 shards, local, rank, dist)]
    status = 0
    if rank == 0:
        if args.out:
            np.savez(args.out, *outs)
        if args.check:
            expected = np.load(args.check)
            diff = max(float(np.max(np.abs(o - expected[f"arr_{i}"]))) for i, o in enumerate(outs))
            print(f"max abs difference vs {args.check}: {diff:.3g}")
            status = 0 if diff <= args.tol else 1
    dist.barrier()
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
