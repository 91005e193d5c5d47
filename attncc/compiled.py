"""CompiledModel: a lowered graph you can call, price and export."""
from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np

from .backends.core import folder_checks  # TVM-free: the checks the exported runtime runs too
from .backends.core.cache import sha256_file  # TVM-free: hashes files only
from .backends.core.notes import fallbacks  # TVM-free: typed lowering notes
from .errors import ArtifactError, FallbackError, FallbackWarning, InputError
from .ir import Graph, graph_to_json
from .ir.types import numpy_dtype

def fallback_notes(notes: list[str]) -> list[tuple[str | None, str, str]]:
    """(node name, how it ran, note) for each lowering note of kind "fallback" (backends/core/notes.py: the core
    and the plugins type every note they write; an untyped string is never read as a fallback)."""
    return [(n.node, n.ran_as, n.message) for n in fallbacks(notes)]


def _dtype_name(x: Any) -> str | None:
    """The dtype of a tensor/array as an IR dtype name ("float32", "int64", "bfloat16"); None for other objects."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.") if _is_torch(x) else np.dtype(dtype).name


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
                 source_graph: Graph | None = None, strict: bool = False, price=None):
        self.graph = graph
        # price(graph, hardware=..., dims=...) -> CostReport: attncc.analyze when made by attncc.compile / load
        # (passed in, so this module never imports the API that imports it); default: op-by-op pricing
        self.price = price
        self.executable = executable
        self.target = target
        self.pipeline = pipeline
        self.hardware = hardware
        self.source_graph = source_graph
        self._report = None
        # symbol values (e.g. {"batch": 2, "seq": 128}) from the example inputs or the latest call, for pricing
        self.dims: dict[str, int] = {}
        self.strict = strict        # a lowering fallback (generic/reference code for a node) is an error
        self._notes_seen = 0        # lowering notes already warned about (dynamic shapes add notes per shape)

    @property
    def diagnostics(self) -> list[dict]:
        return list(self.graph.diagnostics) + [{"kind": "lowering", "message": m} for m in self.executable.notes]

    @property
    def report(self):
        """The cost report of the optimized graph on this target's hardware (computed on first use)."""
        if self._report is None:
            from .cost_models import analyze_graph

            self._report = (self.price or analyze_graph)(self.graph, hardware=self.hardware, dims=dict(self.dims))
            ran_as = {node: how for node, how, _ in fallback_notes(self.executable.notes) if node}
            for row in self._report.rows:   # a kernel row covers IR ops: marked by the first that fell back
                row.lowering = ran_as.get(row.name) or next((ran_as[op] for op in row.ops if op in ran_as), "")
        return self._report

    def check_fallbacks(self) -> None:
        """Warn once per lowering note that reports a fallback (naming the node); with `strict`, raise FallbackError."""
        notes = list(self.executable.notes)
        new, self._notes_seen = fallback_notes(notes[self._notes_seen:]), len(notes)
        if not new:
            return
        self._report = None  # rows get their "ran as" marks from the notes
        if self.strict:
            raise FallbackError(f"strict=True: {len(new)} node(s) of graph '{self.graph.name}' fell back on {self.target}: "
                                + "; ".join(f"node '{node}' ran as {how}" for node, how, _ in new)
                                + f" ({new[0][2]})")
        for node, how, note in new:
            warnings.warn(f"attncc: node '{node}' fell back to {how} (not its tuned kernel): {note}", FallbackWarning,
                          stacklevel=3)

    def check_inputs(self, args) -> None:
        """Reject an input whose dtype differs from the graph input's, or whose shape contradicts a static dim."""
        for v, a in zip(self.graph.inputs, args):
            got = _dtype_name(a)
            if got is not None and got != v.dtype:
                raise InputError(f"input '{v.name}' is {got} but the model expects {v.dtype}; "
                                 f"cast it (e.g. x.to(torch.{v.dtype}) or x.astype(np.{v.dtype}))")
            shape = getattr(a, "shape", None)
            if shape is None:
                continue
            shape = tuple(int(n) for n in shape)
            if len(shape) != len(v.shape):
                raise InputError(f"input '{v.name}' expects rank {len(v.shape)} {v.type}, got shape {shape}")
            fixed = [(i, d, n) for i, (d, n) in enumerate(zip(v.shape, shape)) if isinstance(d, int) and d != n]
            if fixed:
                i, d, n = fixed[0]
                raise InputError(f"input '{v.name}' expects {v.type}, got shape {shape}: dim {i} is static ({d}) in "
                                 f"this compiled model. {self._how_to_declare_dynamic(v.name, i)}")
        # symbolic dims: equal where inputs share one, inside the range declared at compile time (torch.export's
        # Dim(min=, max=)); past it kernels read outside tables sized for the range (e.g. a RoPE table)
        specs = [{"name": v.name, "dtype": v.dtype, "shape": list(v.shape)} for v in self.graph.inputs]
        try:
            folder_checks.check_ranges(specs, self.graph.metadata.get("dim_ranges") or {},
                                       [tuple(int(n) for n in getattr(a, "shape", ())) for a in args])
        except folder_checks.InputError as e:
            raise InputError(str(e)) from None

    def _how_to_declare_dynamic(self, name: str, axis: int) -> str:
        torch_hint = (f"compile with a dynamic dim: attncc.compile(model, example_inputs, dynamic_shapes="
                      f"{{'{name}': {{{axis}: torch.export.Dim('d{axis}')}}}}) (torch.export's dynamic_shapes)")
        onnx_hint = "export the ONNX model with symbolic dims (dim_param, e.g. torch.onnx.export(..., dynamic_axes=...))"
        source = self.source_graph if self.source_graph is not None else self.graph
        if "onnx_inputs" in source.metadata:
            return f"To accept other sizes, {onnx_hint}."
        return f"To accept other sizes, {torch_hint}; for an ONNX model, {onnx_hint}."

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
        self.check_inputs(args)
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
        outs = self._apply_input_mutations(args, outs)
        if len(self.executable.notes) > self._notes_seen:  # a new shape was lowered: report its fallbacks
            self.check_fallbacks()
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _apply_input_mutations(self, args, outs: list) -> list:
        """Inputs the model writes in place (a static KV cache, index_copy_): their new values lead the graph's
        outputs. Written in the caller's memory already when it was passed zero-copy; else copied back into the
        caller's tensor, as torch would have mutated it. Returns the model's own outputs."""
        muts = self.graph.metadata.get("input_mutations", [])
        if not muts:
            return outs
        names = [v.name for v in self.graph.inputs]
        for out_index, input_name in muts:
            user, new = args[names.index(input_name)], outs[out_index]
            if _is_torch(user):
                if user.data_ptr() != (new.data_ptr() if _is_torch(new) else np.asarray(new).ctypes.data):
                    import torch

                    user.copy_(new if _is_torch(new) else torch.from_numpy(np.asarray(new)))
            elif isinstance(user, np.ndarray) and not np.shares_memory(user, np.asarray(new)):
                np.copyto(user, np.asarray(new))
        skip = {m[0] for m in muts}
        return [o for i, o in enumerate(outs) if i not in skip]

    def export(self, directory: str) -> list[str]:
        """Write the deployable folder: backend artifacts, graph.json, report.json, manifest.json.

        A folder that cannot be created or written raises ArtifactError (an OSError) naming the path."""
        try:
            return self._export(directory)
        except ArtifactError:
            raise
        except OSError as e:
            where = e.filename or directory
            raise ArtifactError(f"cannot export to {directory!r}: {e.strerror or e} ({where})") from e

    def _export(self, directory: str) -> list[str]:
        from .backends import get_backend

        os.makedirs(directory, exist_ok=True)
        files = list(get_backend(self.target).export(self.executable, directory))
        gpath = os.path.join(directory, "graph.json")
        if gpath not in files:
            with open(gpath, "w") as f:
                f.write(graph_to_json(self.graph))
            files.append(gpath)
        try:
            rpath = os.path.join(directory, "report.json")
            with open(rpath, "w") as f:
                f.write(self.report.to_json())
            with open(os.path.join(directory, "report.txt"), "w") as f:
                f.write(self.report.to_text() + "\n")
            files += [rpath, os.path.join(directory, "report.txt")]
            report_note = None
        except (NotImplementedError, KeyError, ValueError) as e:  # e.g. symbolic dims never bound by a call
            report_note = f"not written: {e}"
        with open(os.path.join(directory, "README.md"), "w") as f:
            f.write(_folder_readme(self))
        files.append(os.path.join(directory, "README.md"))
        manifest = export_manifest(self, directory, files)
        if report_note:
            manifest["report"] = report_note
        mpath = os.path.join(directory, "manifest.json")
        with open(mpath, "w") as f:
            json.dump(manifest, f, indent=2)
        return files + [mpath]

    def __repr__(self) -> str:
        return (f"CompiledModel(target={self.target!r}, nodes={len(self.graph.nodes)}, "
                f"attention_sites={len(self.graph.attention_ops())})")


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("attncc", "apache-tvm", "apache-tvm-ffi", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def export_manifest(model: "CompiledModel", directory: str, files: list[str]) -> dict:
    """What the folder holds and how to call it: versions, target, inputs/outputs (dtype, shape with its
    symbolic dims, an example shape), the sha256 of every file (checked by `attncc.load`)."""
    dims = dict(model.dims)

    def io(v):
        example = [d if isinstance(d, int) else dims.get(d) for d in v.shape]
        return {"name": v.name, "dtype": v.dtype, "shape": list(v.shape),
                "example_shape": example if all(isinstance(d, int) for d in example) else None}

    dynamic = sorted({d for v in model.graph.inputs for d in v.shape if isinstance(d, str)})
    ranges = model.graph.metadata.get("dim_ranges", {}) if hasattr(model.graph, "metadata") else {}
    return {"format": "attncc-export-2", "versions": _versions(), "target": model.target,
            "tvm_target": getattr(model.executable.artifacts.get("program"), "target", None),
            "pipeline": model.pipeline, "hardware": model.hardware,
            "inputs": [io(v) for v in model.graph.inputs], "outputs": [io(v) for v in model.graph.outputs],
            "dynamic_dims": {d: ranges.get(d, {"min": None, "max": None}) for d in dynamic},
            "example_dims": dims,
            "files": {os.path.relpath(p, directory): sha256_file(p) for p in sorted(set(files))}}


def verify_export(directory: str, manifest: dict) -> None:
    """Raise ArtifactError naming the first file of an export folder that is missing or not the file exported."""
    if not isinstance(manifest.get("files"), dict):
        return  # an older export without checksums: nothing to verify against
    try:
        folder_checks.verify_files(directory, manifest)   # the exported runtime runs the same check
    except folder_checks.FolderError as e:
        raise ArtifactError(str(e)) from None


def _folder_readme(model: "CompiledModel") -> str:
    ins = "\n".join(f"- `{v.name}`: {v.dtype} {list(v.shape)}" for v in model.graph.inputs)
    outs = "\n".join(f"- `{v.name}`: {v.dtype} {list(v.shape)}" for v in model.graph.outputs)
    return f"""# attncc export ({model.target})

Compiled by attncc for target `{model.target}` (cost report: `report.txt`). Symbolic dims are bound from the
inputs at every call: one build serves every size.

Inputs:
{ins}

Outputs:
{outs}

## Run it without attncc or torch

Needs only `apache-tvm`, `apache-tvm-ffi` and `numpy` (TVM's runtime library is enough: `run.py` sets
`TVM_USE_RUNTIME_LIB=1`):

```bash
python run.py                      # random inputs of the example sizes; prints the outputs' shapes
python run.py --inputs x.npz --outputs y.npz   # your inputs (arr_0, arr_1, ... in order), outputs saved
python run.py --inputs x.npz --allow-cast      # cast inputs of another dtype instead of refusing them
```

Before loading anything, every file is checked against its sha256 in `manifest.json` (`attncc_checks.py`);
every input against its declared dtype, rank, static sizes and the range of each symbolic dim (the range the
model was compiled with). A failure is one line naming the file or input (`run.py`: exit status 2).

```python
import sys; sys.path.insert(0, "path/to/this/folder")
import attncc_runtime as rt
rt.size_thread_pool()              # every core (TVM alone would take half)
model = rt.load_folder("path/to/this/folder")   # FolderError (an OSError) names a missing/modified file
outputs = model.run([x, ...])      # numpy arrays or torch tensors in (zero-copy when aligned), TVM tensors out;
                                   # InputError (a TypeError) for a wrong dtype/shape/range (allow_cast=True casts)
y = outputs[0].numpy()
```

## With attncc

```python
import attncc
model = attncc.load("path/to/this/folder")   # checks every file against manifest.json's sha256 first
y = model(x, ...)
```
"""
