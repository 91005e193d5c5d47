"""CompiledModel: a lowered graph you can call, price and export."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .ir import Graph, graph_to_json
from .ir.types import numpy_dtype


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def to_numpy(x: Any, dtype: str | None = None) -> np.ndarray:
    """torch tensor / array-like -> numpy (bfloat16 through ml_dtypes), cast to `dtype` when given."""
    if _is_torch(x):
        import torch

        t = x.detach().cpu()
        if t.dtype == torch.bfloat16:
            arr = t.view(torch.int16).numpy().view(numpy_dtype("bfloat16"))
        else:
            arr = t.numpy()
    else:
        arr = np.asarray(x)
    if dtype is not None and arr.dtype != numpy_dtype(dtype):
        arr = arr.astype(numpy_dtype(dtype))
    return arr


def to_torch(a: np.ndarray):
    """numpy -> torch (bfloat16 preserved)."""
    import torch

    if "bfloat16" in str(a.dtype):
        return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(np.ascontiguousarray(a))


class CompiledModel:
    """A model compiled for one target.

    Call it with torch tensors (returns torch tensors) or numpy arrays (returns numpy).
    `.graph` is the optimized IR, `.report` the cost report for the target's hardware,
    `.diagnostics` what the frontend and passes noted (e.g. softmaxes not lifted and why),
    `.export(dir)` writes a deployable folder.
    """

    def __init__(self, graph: Graph, executable, target: str, pipeline: str, hardware: str,
                 source_graph: Graph | None = None):
        self.graph = graph
        self.executable = executable
        self.target = target
        self.pipeline = pipeline
        self.hardware = hardware
        self.source_graph = source_graph
        self._report = None
        # symbol values (e.g. {"batch": 2, "seq": 128}) from the example inputs or the latest call, for pricing
        self.dims: dict[str, int] = {}

    @property
    def diagnostics(self) -> list[dict]:
        return list(self.graph.diagnostics) + [{"kind": "lowering", "message": m} for m in self.executable.notes]

    @property
    def report(self):
        """The cost report of the optimized graph on this target's hardware (computed on first use)."""
        if self._report is None:
            from .api import analyze

            self._report = analyze(self.graph, hardware=self.hardware, dims=dict(self.dims))
        return self._report

    def bind_dims(self, inputs) -> None:
        """Record symbolic dim values from concrete inputs (the report prices these shapes)."""
        from .ir.interpreter import bind_dims

        dims = bind_dims(self.graph, [to_numpy(a) if _is_torch(a) else np.asarray(a) for a in inputs])
        if dims != self.dims:
            self.dims, self._report = dims, None

    def __call__(self, *args, **kwargs):
        if kwargs:
            names = [v.name for v in self.graph.inputs]
            unknown = set(kwargs) - set(names)
            if unknown:
                raise TypeError(f"unknown inputs {sorted(unknown)}; the model takes {names}")
            args = list(args) + [kwargs[n] for n in names[len(args):]]
        if len(args) != len(self.graph.inputs):
            raise TypeError(f"the model takes {len(self.graph.inputs)} inputs "
                            f"({[v.name for v in self.graph.inputs]}), got {len(args)}")
        if not self.dims and any(isinstance(d, str) for v in self.graph.inputs for d in v.shape):
            self.bind_dims(args)
        as_torch = any(_is_torch(a) for a in args)
        if as_torch and self.executable.accepts_torch and all(_is_torch(a) for a in args):
            outs = self.executable(list(args))
            outs = [o if _is_torch(o) else to_torch(np.asarray(o)) for o in outs]
        else:
            arrays = [to_numpy(a, v.dtype) for a, v in zip(args, self.graph.inputs)]
            outs = [np.asarray(o) if not _is_torch(o) else to_numpy(o) for o in self.executable(arrays)]
            if as_torch:
                outs = [to_torch(o) for o in outs]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def export(self, directory: str) -> list[str]:
        """Write the deployable folder: backend artifacts, graph.json, report.json, manifest.json."""
        from .backends import get_backend

        os.makedirs(directory, exist_ok=True)
        files = list(get_backend(self.target).export(self.executable, directory))
        gpath = os.path.join(directory, "graph.json")
        if gpath not in files:
            with open(gpath, "w") as f:
                f.write(graph_to_json(self.graph))
            files.append(gpath)
        manifest = {"target": self.target, "pipeline": self.pipeline, "hardware": self.hardware,
                    "inputs": [{"name": v.name, "dtype": v.dtype, "shape": list(v.shape)} for v in self.graph.inputs],
                    "outputs": [{"name": v.name, "dtype": v.dtype, "shape": list(v.shape)} for v in self.graph.outputs],
                    "files": [os.path.basename(p) for p in files]}
        try:
            rpath = os.path.join(directory, "report.json")
            with open(rpath, "w") as f:
                f.write(self.report.to_json())
            manifest["files"].append("report.json")
        except (NotImplementedError, KeyError, ValueError) as e:  # e.g. symbolic dims never bound by a call
            manifest["report"] = f"not written: {e}"
        mpath = os.path.join(directory, "manifest.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f, indent=2)
        return files + [mpath]

    def __repr__(self) -> str:
        return (f"CompiledModel(target={self.target!r}, nodes={len(self.graph.nodes)}, "
                f"attention_sites={len(self.graph.attention_ops())})")
