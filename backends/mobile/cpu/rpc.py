"""Run and time an exported folder on a remote device through TVM's RPC (`tvm.rpc`, TVM's maintained path
to a phone or board), not a home-made protocol.

The device runs TVM's own server (`python -m tvm.exec.rpc_server --host 0.0.0.0 --port 9090`, or the
Android/iOS RPC apps, or a tracker). This side uploads the folder's kernel library, loads it there, and
drives the folder's plan (the same `PlanExecutor` as the exported attncc_runtime.py) with every tensor in
the device's memory: each kernel call is an RPC call. `RemoteModel.time` times each kernel ON the device
with TVM's `time_evaluator` (the per-call round trip is not counted); times from an emulated server
(qemu) are not speed figures.

    python -m attncc.backends.mobile.cpu.rpc out/ --host 192.168.1.20 --port 9090 [--inputs x.npz] [--time]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from ...core.folder_checks import check_inputs, read_checked_index, read_json
from ...core.runtime import PlanExecutor, tvm


class RemoteError(RuntimeError):
    """The folder cannot run through this RPC session."""


def connect(host: str, port: int, key: str = "", tracker: bool = False, timeout: float = 60):
    """An RPC session: straight to a server at host:port, or (tracker=True) a device of `key` from a tracker."""
    from tvm import rpc

    if tracker:
        return rpc.connect_tracker(host, port).request(key, session_timeout=timeout)
    return rpc.connect(host, port, key=key, session_timeout=timeout)


class _RemoteExecutor(PlanExecutor):
    """A plan whose tensors live on the remote device: host arrays are always copied there (a zero-copy
    DLPack view of host memory means nothing to the device)."""

    def to_tensor(self, x: Any, name: str, dtype: str):
        if isinstance(x, tvm.runtime.Tensor) and x.device == self.dev and x.dtype == dtype:
            return x
        a = np.asarray(x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else x)
        if a.dtype.name != dtype:
            if dtype == "bfloat16":   # numpy knows bf16 only through ml_dtypes
                import ml_dtypes

                a = a.astype(ml_dtypes.bfloat16)
            else:
                a = a.astype(dtype)
        return tvm.runtime.tensor(np.ascontiguousarray(a), self.dev)


class RemoteModel:
    """An exported folder (plans.json, plan_<i>.json, kernels_<i>.so, constants_<i>.npz) loaded on the device
    behind `session`; `run` returns numpy arrays, `time` each kernel's on-device time.

    As in the exported runtime: every file is checked against manifest.json's sha256 before it is uploaded
    (`verify=False` skips that), and inputs against the declared dtypes (no cast unless `allow_cast`), static
    sizes and dim ranges."""

    def __init__(self, folder: str, session, device: str = "cpu", allow_cast: bool = False, verify: bool = True):
        self.session, self.dev, self.allow_cast = session, session.device(device), allow_cast
        self.manifest, index = read_checked_index(folder, verify)
        self.inputs, self.outputs = index["inputs"], index["outputs"]
        self._entries = []
        for entry in index["plans"]:
            plan = read_json(os.path.join(folder, entry["plan"]))
            if any(s["kind"] == "reference" for s in plan["steps"]):
                raise RemoteError(f"{folder}: nodes {sorted({s['node'] for s in plan['steps'] if s['kind'] == 'reference'})} "
                                  "run attncc's numpy reference on the host, which a device cannot run")
            lib = None
            if entry.get("library"):
                # a per-folder remote name: two folders' kernels_0.so must not overwrite each other there
                remote_name = f"attncc_{abs(hash(os.path.abspath(folder)))}_{entry['library']}"
                session.upload(os.path.join(folder, entry["library"]), target=remote_name)
                lib = session.load_module(remote_name)
            with np.load(os.path.join(folder, entry["constants"])) as data:
                constants = {n: self._constant(plan, n, data[n]) for n in data.files}
            self._entries.append((entry["shapes"], lib, _RemoteExecutor(plan, lib, constants, self.dev)))

    @staticmethod
    def _constant(plan: dict, name: str, arr: np.ndarray) -> np.ndarray:
        if plan["values"][name]["dtype"] == "bfloat16":   # stored as its uint16 bits
            import ml_dtypes

            return arr.view(ml_dtypes.bfloat16)
        return arr

    def _entry(self, inputs: Sequence[Any]):
        if self.manifest is not None:   # InputError naming the input before anything reaches the device
            check_inputs(self.manifest["inputs"], self.manifest.get("dynamic_dims") or {}, inputs, self.allow_cast)
        shapes = [list(np.shape(x)) for x in inputs]
        for want, lib, executor in self._entries:
            if want == "generic" or want == shapes:
                return lib, executor
        raise ValueError(f"no build for input shapes {shapes}; builds: {[w for w, _, _ in self._entries]}")

    def run(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """The outputs, computed on the device and copied back."""
        _, executor = self._entry(inputs)
        return [t.numpy() for t in executor.run(inputs)]

    def time(self, inputs: Sequence[Any], number: int = 10, repeat: int = 3) -> list[dict]:
        """One row per kernel call of the plan: {"func", "node", "median_s", "mean_s"}, measured on the device
        by TVM's time_evaluator over the arguments of one real run (kernels only; host glue not counted)."""
        lib, executor = self._entry(inputs)
        calls: list[tuple[str, tuple]] = []
        funcs = executor._funcs
        executor._funcs = {n: (lambda *a, n=n: (calls.append((n, a)), funcs[n](*a))[1]) for n in funcs}
        try:
            executor.run(inputs)
        finally:
            executor._funcs = funcs
        nodes = {s["func"]: s.get("node", "?") for s in executor.steps if s.get("func")}
        rows = []
        for name, args in calls:
            res = lib.time_evaluator(name, self.dev, number=number, repeat=repeat)(*args)
            rows.append({"func": name, "node": nodes.get(name, "?"), "median_s": float(res.median),
                         "mean_s": float(res.mean)})
        return rows


def _random_inputs(folder: str) -> list[np.ndarray]:
    """Inputs of the shapes the folder's first build was made for (static shapes only)."""
    with open(os.path.join(folder, "plans.json")) as f:
        index = json.load(f)
    with open(os.path.join(folder, index["plans"][0]["plan"])) as f:
        values = json.load(f)["values"]
    rng = np.random.default_rng(0)
    out = []
    for name in index["inputs"]:
        shape, dtype = values[name]["shape"], values[name]["dtype"]
        if not all(isinstance(d, int) for d in shape):
            raise SystemExit(f"input '{name}' has symbolic shape {shape}: pass --inputs x.npz")
        out.append(rng.random(shape) > 0.5 if dtype == "bool" else rng.standard_normal(shape).astype(dtype))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m attncc.backends.mobile.cpu.rpc",
                                description="run (and time) an exported attncc folder on a TVM RPC server")
    p.add_argument("folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--key", default="", help="device key (with --tracker: the tracker's key for the device)")
    p.add_argument("--tracker", action="store_true", help="host:port is an RPC tracker, not a server")
    p.add_argument("--inputs", help="npz with the inputs in order (arr_0, arr_1, ...); default: random")
    p.add_argument("--time", action="store_true", help="time each kernel on the device (time_evaluator)")
    p.add_argument("--number", type=int, default=10)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--allow-cast", action="store_true", help="cast inputs of another dtype instead of refusing them")
    args = p.parse_args(argv)
    if args.inputs:
        with np.load(args.inputs) as data:
            inputs = [data[n] for n in sorted(data.files, key=lambda n: int(n.split("_")[-1]))]
    else:
        inputs = _random_inputs(args.folder)
    model = RemoteModel(args.folder, connect(args.host, args.port, args.key, args.tracker), allow_cast=args.allow_cast)
    for name, out in zip(model.outputs, model.run(inputs)):
        print(f"{name}: {out.shape} {out.dtype}")
    if args.time:
        rows = model.time(inputs, args.number, args.repeat)
        for r in rows:
            print(f"{r['median_s'] * 1e6:12.1f} us  {r['func']}  ({r['node']})")
        print(f"{sum(r['median_s'] for r in rows) * 1e6:12.1f} us  kernels total (on the device)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
