"""Compile cache: a lowered plan + its built library, keyed by graph text, target, options and shapes
(plus the backend/IR sources, the TVM version and, for host code, the CPU's SIMD flags), all computed
without TVM, so a process whose every build is cached loads them with TVM's runtime alone.

In memory for the process, and on disk under $ATTNCC_CACHE_DIR/<target> (default ~/.cache/attncc/<target>)
as `<key>/plan.json` + `<key>/kernels.so` (every kernel of the plan, attention included, in one library),
so recompiling an unchanged model is near-instant: nothing is rebuilt.
Constants are not part of the key: weights are bound at load, not compiled in.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Any

from ...ir import Graph, print_ir

CACHE_VERSION = "core-3"


def _code_fingerprint() -> str:
    """Hash of the backend's, the IR's and the cost models' source files, so a code change never reuses a stale
    plan (the sources are the version: the backends import nothing of attncc above them; the cost models' tile
    rules pick the register tiles a kernel builds when the graph records none)."""
    import sys

    from ... import cost_models

    roots = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),                  # backends/
             os.path.dirname(os.path.abspath(sys.modules[Graph.__module__].__file__)),     # ir/ (decompositions, passes)
             os.path.dirname(os.path.abspath(cost_models.__file__))]                       # cost_models/ (tile rules)
    h = hashlib.sha256(CACHE_VERSION.encode())
    for root in roots:
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for name in sorted(files):
                if name.endswith(".py"):
                    with open(os.path.join(folder, name), "rb") as f:
                        h.update(f.read())
    return h.hexdigest()[:16]


_FINGERPRINT: str | None = None


def code_fingerprint() -> str:
    """`_code_fingerprint()`, computed once per process."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        _FINGERPRINT = _code_fingerprint()
    return _FINGERPRINT


def cache_dir(target_name: str = "cpu") -> str:
    """Where `target_name`'s builds are kept: $ATTNCC_CACHE_DIR/<target> (default ~/.cache/attncc/<target>)."""
    return os.path.join(os.environ.get("ATTNCC_CACHE_DIR") or os.path.expanduser("~/.cache/attncc"), target_name)


@functools.lru_cache(maxsize=None)
def toolchain_version() -> str:
    """apache-tvm and apache-tvm-ffi versions (read from their package metadata: no TVM import)."""
    from importlib import metadata

    versions = []
    for dist in ("apache-tvm", "apache-tvm-ffi"):
        try:
            versions.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:   # a source build of TVM: its sources are not hashed, say so
            versions.append(f"{dist}==unknown")
    return ";".join(versions)


_SIMD_FLAG = re.compile(r"^(sse\w*|ssse3|avx\w*|fma\w*|f16c|amx\w*|vaes|vpclmulqdq|asimd\w*|sve\w*|fp16|bf16|i8mm)$")


@functools.lru_cache(maxsize=None)
def host_isa() -> str:
    """This machine's architecture and SIMD flags (/proc/cpuinfo): host code built on one CPU may use
    instructions another lacks even when both are given the same LLVM -mcpu."""
    import platform

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags = {w for w in val.split() if _SIMD_FLAG.match(w)}
                    break
    except OSError:
        pass
    return platform.machine() + ":" + ",".join(sorted(flags))


def recorded_tiles(graph: Graph) -> str:
    """The tile pass's records the kernels build (graph.metadata["tiling"]; not part of the printed graph),
    without the predicted times a cost-model refit changes."""
    tiling = graph.metadata.get("tiling") or {}
    return json.dumps({name: ({k: v for k, v in rec.items() if k != "predicted_s"} if isinstance(rec, dict) else rec)
                       for name, rec in tiling.items()}, sort_keys=True, default=str)


def cache_key(graph: Graph, target: dict, options: dict, input_shapes, target_name: str = "cpu") -> str:
    """sha256 over the code version (backend + IR + cost-model sources, TVM's version), the printed graph and its
    recorded tiles, the target, the options, the input shapes (concrete sizes, or the symbolic signature of a
    shape-generic build) and, for code that runs on this host (llvm without a cross triple), its SIMD flags."""
    host = target.get("kind") == "llvm" and not target.get("mtriple")
    h = hashlib.sha256()
    for part in (CACHE_VERSION, target_name, code_fingerprint(), toolchain_version(), host_isa() if host else "",
                 print_ir(graph), recorded_tiles(graph), json.dumps(target, sort_keys=True),
                 json.dumps({k: v for k, v in options.items() if k != "cache"}, sort_keys=True, default=str),
                 json.dumps([list(s) for s in input_shapes])):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


@dataclass
class CacheStats:
    memory_hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    corrupt: int = 0

    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits


@dataclass
class CompileCache:
    """Entries are (plan, lib) pairs; the disk holds plan.json + kernels.so."""

    memory: dict[str, Any] = field(default_factory=dict)
    stats: CacheStats = field(default_factory=CacheStats)

    def get_memory(self, key: str):
        entry = self.memory.get(key)
        if entry is not None:
            self.stats.memory_hits += 1
        return entry

    def put_memory(self, key: str, entry) -> None:
        self.memory[key] = entry

    def disk_path(self, key: str, target_name: str = "cpu") -> str:
        return os.path.join(cache_dir(target_name), key)

    def load_disk(self, key: str, target_name: str = "cpu"):
        """(plan_json, library path or None) when a sound entry exists on disk, else None.

        Every file is checked against the sha256 sums written beside it before anything is loaded (a
        truncated library would otherwise crash the process with SIGBUS when TVM maps it): a corrupt or
        incomplete entry is removed with a warning, and the caller rebuilds it."""
        path = self.disk_path(key, target_name)
        if not os.path.isdir(path):
            return None
        problem = verify_folder(path, CHECKSUMS)
        if problem is not None:
            self.discard(key, target_name, problem)
            return None
        with open(os.path.join(path, "plan.json")) as f:
            text = f.read()
        lib = os.path.join(path, "kernels.so")
        return text, (lib if os.path.exists(lib) else None)

    def discard(self, key: str, target_name: str, reason: str) -> None:
        """Warn that entry `key` cannot be used (`reason`) and remove it; the caller rebuilds it."""
        path = self.disk_path(key, target_name)
        warnings.warn(f"attncc: compile cache entry {path} is unusable ({reason}); rebuilding it",
                      CacheWarning, stacklevel=4)
        shutil.rmtree(path, ignore_errors=True)
        self.memory.pop(key, None)
        self.stats.corrupt += 1

    def save_disk(self, key: str, plan_json: str, lib, target_name: str = "cpu", write=None) -> None:
        """Write atomically (temp dir + rename) so concurrent compiles never see half an entry.
        `write(lib, path)` writes the library (default: `lib.export_library`; cross targets link their own way)."""
        final = self.disk_path(key, target_name)
        if os.path.exists(final):
            return
        os.makedirs(cache_dir(target_name), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=cache_dir(target_name), prefix=".tmp-")
        if lib is not None:
            (write or (lambda m, p: m.export_library(p)))(lib, os.path.join(tmp, "kernels.so"))
        with open(os.path.join(tmp, "plan.json"), "w") as f:
            f.write(plan_json)
        write_checksums(tmp, CHECKSUMS)
        try:
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)


class CacheWarning(UserWarning):
    """A compile cache entry was corrupt or incomplete and is being rebuilt."""


CHECKSUMS = "checksums.json"


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_checksums(folder: str, name: str) -> dict[str, str]:
    """sha256 of every file in `folder` (but `name` itself), written to `folder`/`name`; returns them."""
    sums = {f: sha256_file(os.path.join(folder, f)) for f in sorted(os.listdir(folder))
            if f != name and os.path.isfile(os.path.join(folder, f))}
    with open(os.path.join(folder, name), "w") as f:
        json.dump(sums, f, indent=1)
    return sums


def verify_folder(folder: str, name: str) -> str | None:
    """None when every file listed in `folder`/`name` exists with its sha256, else what is wrong."""
    try:
        with open(os.path.join(folder, name)) as f:
            sums = json.load(f)
    except (OSError, ValueError) as e:
        return f"{name} unreadable: {e}"
    if not isinstance(sums, dict) or not sums:
        return f"{name} lists no files"
    for file, want in sums.items():
        p = os.path.join(folder, file)
        if not os.path.isfile(p):
            return f"{file} is missing"
        if sha256_file(p) != want:
            return f"{file} does not match its sha256 (truncated or modified)"
    return None


GLOBAL_CACHE = CompileCache()
