"""Compile cache: a lowered plan + its built library, keyed by graph text, target, options and shapes.

In memory for the process, and on disk under $ATTNCC_CACHE_DIR/<target> (default ~/.cache/attncc/<target>)
as `<key>/plan.json` + `<key>/kernels.so` + per attention step `<key>/attention_<step>.so` (kind and
schedule in `<key>/attention.json`), so recompiling an unchanged model is near-instant: nothing is rebuilt.
Constants are not part of the key: weights are bound at load, not compiled in.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

from ...ir import Graph, print_ir

CACHE_VERSION = "core-2"
ATTENTION_INDEX = "attention.json"


def _code_fingerprint() -> str:
    """Hash of the backend's and the IR's source files, so a code change never reuses a stale plan."""
    import attncc

    roots = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),  # backends/
             os.path.dirname(os.path.abspath(attncc.ir.__file__))]         # ir/ (decompositions, passes)
    h = hashlib.sha256(attncc.__version__.encode())
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


def cache_key(graph: Graph, target: dict, options: dict, input_shapes, target_name: str = "cpu") -> str:
    """sha256 over the code version, the printed graph, the target, the options and the input shapes
    (concrete sizes, or the symbolic signature of a shape-generic build)."""
    h = hashlib.sha256()
    for part in (CACHE_VERSION, target_name, code_fingerprint(), print_ir(graph), json.dumps(target, sort_keys=True),
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

    @property
    def hits(self) -> int:
        return self.memory_hits + self.disk_hits


@dataclass
class CompileCache:
    """Entries are (plan, lib, kernels) tuples; the disk holds plan.json + kernels.so + attention_<step>.so."""

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
        """(plan_json, lib path or None, attention files) when the entry exists on disk, else None.

        Attention files map step index -> (library path, metadata); an entry without them (or with an
        unreadable attention.json) gives {} and the kernels are rebuilt from the plan's configs.
        """
        path = self.disk_path(key, target_name)
        plan_path = os.path.join(path, "plan.json")
        if not os.path.exists(plan_path):
            return None
        lib = os.path.join(path, "kernels.so")
        with open(plan_path) as f:
            text = f.read()
        return text, (lib if os.path.exists(lib) else None), _read_attention_index(path)

    def save_disk(self, key: str, plan_json: str, lib, kernels: dict | None = None, target_name: str = "cpu") -> None:
        """Write atomically (temp dir + rename) so concurrent compiles never see half an entry.

        `kernels` (step index -> AttentionKernel) are stored as attention_<step>.so + attention.json.
        """
        final = self.disk_path(key, target_name)
        if os.path.exists(final):
            return
        os.makedirs(cache_dir(target_name), exist_ok=True)
        tmp = tempfile.mkdtemp(dir=cache_dir(target_name), prefix=".tmp-")
        if lib is not None:
            lib.export_library(os.path.join(tmp, "kernels.so"))
        index = {}
        for step, kernel in (kernels or {}).items():
            if hasattr(kernel, "export_library") and hasattr(kernel, "metadata"):
                name = f"attention_{step}.so"
                kernel.export_library(os.path.join(tmp, name))
                index[str(step)] = {"library": name, **kernel.metadata()}
        if index:
            with open(os.path.join(tmp, ATTENTION_INDEX), "w") as f:
                json.dump(index, f, indent=1)
        with open(os.path.join(tmp, "plan.json"), "w") as f:
            f.write(plan_json)
        try:
            os.rename(tmp, final)
        except OSError:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _read_attention_index(folder: str) -> dict[int, tuple[str, dict]]:
    """step -> (library path, metadata) from `folder`/attention.json; {} when absent or unreadable."""
    try:
        with open(os.path.join(folder, ATTENTION_INDEX)) as f:
            index = json.load(f)
        return {int(step): (os.path.join(folder, meta["library"]), meta) for step, meta in index.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


GLOBAL_CACHE = CompileCache()
