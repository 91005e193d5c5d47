"""Run mobile-cpu builds here under qemu-aarch64 emulation, with an aarch64 Python + TVM's own runtime.

The sysroot (Debian arm64 python3.11 + the aarch64 apache-tvm, apache-tvm-ffi, numpy, ml_dtypes wheels) is
made by tests/tools/arm64_sysroot.sh; its place is $ATTNCC_ARM64_ROOT (default /opt/arm64root). What runs
is an exported folder's own `attncc_runtime.py` over its aarch64 library: the deployable artifact itself.
Emulated timings mean nothing about a phone: nothing here measures speed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Sequence

import numpy as np

from ...core.plan import Plan
from .cross import write_library

ROOT_ENV = "ATTNCC_ARM64_ROOT"
SETUP = "tests/tools/arm64_sysroot.sh"


class EmulationError(RuntimeError):
    """Emulation is not set up, or the emulated run failed."""


def sysroot() -> str:
    return os.environ.get(ROOT_ENV, "/opt/arm64root")


def python_path(root: str | None = None) -> str:
    return os.path.join(root or sysroot(), "usr", "bin", "python3.11")


def unavailable() -> str | None:
    """Why emulated runs cannot happen here (None when they can)."""
    root = sysroot()
    if shutil.which("qemu-aarch64-static") is None:
        return "qemu-aarch64-static is not installed (Debian qemu-user-static)"
    if not os.path.exists(python_path(root)):
        return f"no aarch64 python at {python_path(root)} (run {SETUP}, or set {ROOT_ENV})"
    if not os.path.isdir(os.path.join(root, "usr", "lib", "python3", "dist-packages", "tvm")):
        return f"no aarch64 TVM runtime in {root} (run {SETUP})"
    return None


_DRIVER = r'''
import json, os, sys
import numpy as np
jobs = json.load(open(sys.argv[1]))
sys.path.insert(0, jobs[0]["folder"])
import attncc_runtime as rt
rt.size_thread_pool()
for job in jobs:
    print("running", job["folder"], flush=True)   # names the failing job in the error
    model = rt.load_folder(job["folder"], verify=False)   # a build folder written just now, without a manifest
    with np.load(job["inputs"]) as data:
        inputs = [data[f"i{i}"] for i in range(len(data.files))]
    outs = model.run(inputs)
    np.savez(job["outputs"], **{f"o{i}": o.numpy() for i, o in enumerate(outs)})
    print("ran", job["folder"], flush=True)
'''


def run_folders(jobs: Sequence[tuple[str, Sequence[np.ndarray]]], timeout: float = 1800) -> list[list[np.ndarray]]:
    """Run each (exported folder, numpy inputs) under qemu-aarch64 in ONE emulated interpreter (its start
    costs tens of seconds); returns each job's outputs. EmulationError when not set up or the run fails."""
    why = unavailable()
    if why:
        raise EmulationError(f"cannot run mobile-cpu code here: {why}")
    root = sysroot()
    with tempfile.TemporaryDirectory(prefix="attncc-qemu-") as tmp:
        spec = []
        for i, (folder, inputs) in enumerate(jobs):
            ipath, opath = os.path.join(tmp, f"in{i}.npz"), os.path.join(tmp, f"out{i}.npz")
            np.savez(ipath, **{f"i{j}": np.ascontiguousarray(x) for j, x in enumerate(inputs)})
            spec.append({"folder": os.path.abspath(folder), "inputs": ipath, "outputs": opath})
        with open(os.path.join(tmp, "jobs.json"), "w") as f:
            json.dump(spec, f)
        with open(os.path.join(tmp, "driver.py"), "w") as f:
            f.write(_DRIVER)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TVM_USE_RUNTIME_LIB": "1", "PYTHONNOUSERSITE": "1",
               "HOME": tmp, "TVM_NUM_THREADS": os.environ.get("TVM_NUM_THREADS", "2")}
        cmd = ["qemu-aarch64-static", "-L", root, python_path(root), os.path.join(tmp, "driver.py"),
               os.path.join(tmp, "jobs.json")]
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise EmulationError(f"emulated run exceeded {timeout:.0f} s") from e
        if done.returncode != 0:
            last = (done.stdout.strip().splitlines() or ["(before the first job)"])[-1]
            raise EmulationError(f"emulated run failed (exit {done.returncode}) at {last}: "
                                 f"{done.stderr.strip()[-2000:]}")
        results = []
        for job in spec:
            with np.load(job["outputs"]) as data:
                results.append([data[f"o{i}"] for i in range(len(data.files))])
        return results


def write_folder(folder: str, plan: Plan, lib, constants: dict[str, np.ndarray], library_path: str | None) -> None:
    """A minimal runnable folder for one build: plans.json, plan_0.json, kernels_0.so, constants_0.npz and
    attncc_runtime.py + attncc_checks.py (the exported folder's format, see backends/core/backend.py)."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "plan_0.json"), "w") as f:
        f.write(plan.to_json())
    library = None
    if lib is not None:
        library = "kernels_0.so"
        if library_path:
            shutil.copyfile(library_path, os.path.join(folder, library))
        else:
            write_library(lib, os.path.join(folder, library))
    consts = {k: (v.view("uint16") if v.dtype.name == "bfloat16" else v) for k, v in constants.items()}
    np.savez(os.path.join(folder, "constants_0.npz"), **consts)
    with open(os.path.join(folder, "plans.json"), "w") as f:
        json.dump({"inputs": list(plan.inputs), "outputs": list(plan.outputs),
                   "plans": [{"shapes": "generic", "plan": "plan_0.json", "library": library,
                              "constants": "constants_0.npz"}]}, f)
    core = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shutil.copyfile(os.path.join(core, "core", "runtime.py"), os.path.join(folder, "attncc_runtime.py"))
    shutil.copyfile(os.path.join(core, "core", "folder_checks.py"), os.path.join(folder, "attncc_checks.py"))


class EmulatedRunner:
    """The runner of a mobile-cpu build in this process: each call runs the build's aarch64 library under
    qemu (see run_folders); nothing aarch64 is loaded here. Same constructor as core's PlanRunner."""

    def __init__(self, plan: Plan, lib, constants: dict[str, np.ndarray], references: dict):
        self.plan, self.lib, self.references = plan, lib, references
        self._persistent = constants     # Program.constants_of reads the bound constants' names here
        self.library_path: str | None = None
        self._folder: str | None = None

    def folder(self) -> str:
        """This build as a runnable folder (written once, in a temporary directory)."""
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix="attncc-mobile-cpu-")
            write_folder(self._folder, self.plan, self.lib, self._persistent, self.library_path)
        return self._folder

    def __call__(self, inputs: Sequence[Any], as_torch: bool = False) -> list[Any]:
        if self.references:
            raise EmulationError("this mobile-cpu build has steps that run attncc's numpy reference on the host "
                                 f"(nodes {sorted({s['node'] for s in self.plan.steps if s['kind'] == 'reference'})}); "
                                 "it cannot run on the aarch64 runtime")
        arrays = [np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x) for x in inputs]
        outs = run_folders([(self.folder(), arrays)])[0]
        if as_torch:
            torch = sys.modules["torch"]   # torch tensors came in: torch is imported
            return [torch.from_numpy(o) for o in outs]
        return outs
