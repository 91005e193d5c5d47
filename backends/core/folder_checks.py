"""What an exported folder and its inputs must satisfy before anything runs: every file matches its sha256 in
manifest.json, every input has the declared dtype, rank and static sizes, and every symbolic dim lies in the
range declared at compile time (torch.export's `Dim(min=, max=)`; past it a kernel reads outside its tables).

Standard library only, on purpose: `export` copies this file into the folder as `attncc_checks.py` beside
`attncc_runtime.py`, which runs without attncc or torch. Inside attncc the same functions check
`CompiledModel` calls, `attncc.load` and the RPC path (backends/mobile/cpu/rpc.py).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Sequence

MANIFEST = "manifest.json"
REEXPORT = "re-export the model"


class FolderError(OSError):
    """A file of an exported folder is missing, truncated or modified, or needs a runtime or device this machine
    lacks; the message names the file."""


class InputError(TypeError):
    """An input the model was not compiled for: dtype, rank, static size, or a dim outside its declared range."""


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path: str) -> Any:
    """A JSON file of the folder; FolderError names it when it is missing, unreadable or truncated."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise FolderError(f"{path}: missing from the attncc export folder; {REEXPORT}") from None
    except (OSError, ValueError) as e:
        raise FolderError(f"{path}: cannot read it ({type(e).__name__}: {e}): the export folder is truncated or "
                          f"corrupt; {REEXPORT}") from None


def read_manifest(folder: str) -> dict:
    """manifest.json of an exported folder, checked to be one (it lists the sha256 of every file)."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise FolderError(f"{path}: missing: {folder!r} is not a folder written by attncc's export "
                          "(CompiledModel.export, `attncc compile --export`)")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise FolderError(f"{path}: not an attncc manifest (no 'files' with their sha256); {REEXPORT}")
    return manifest


def require_listed(folder: str, manifest: dict, loads: Sequence[str]) -> None:
    """Each file about to be loaded is one manifest.json lists (so its sha256 was checked)."""
    listed = {os.path.normpath(n) for n in manifest.get("files") or {}}
    for name in loads:
        if os.path.normpath(name) not in listed:
            raise FolderError(f"{os.path.join(folder, name)}: not listed in {MANIFEST}, so it cannot be checked; "
                              f"{REEXPORT}")


def verify_files(folder: str, manifest: dict) -> None:
    """Every file manifest.json lists exists and matches its sha256; FolderError names the first one that does not."""
    for name, want in (manifest.get("files") or {}).items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FolderError(f"{path}: missing from the attncc export (listed in {MANIFEST}); {REEXPORT}")
        if sha256_file(path) != want:
            raise FolderError(f"{path}: does not match its sha256 in {MANIFEST} (truncated or modified); {REEXPORT}")


# ---- inputs ----------------------------------------------------------------------------------------------
def dtype_name(x: Any) -> str | None:
    """"float32", "int64", "bfloat16", ... for a numpy array, torch tensor or TVM tensor; None without a dtype."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return None
    name = getattr(dtype, "name", None)   # numpy (and ml_dtypes) dtypes
    return str(name if isinstance(name, str) else dtype).removeprefix("torch.")


def _where(d: str, name: str, axis: int) -> str:
    return f"input '{name}' dim {axis} ({d})"


def dim_values(specs: Sequence[dict], shapes: Sequence[Sequence[int]]) -> dict[str, tuple[int, str, int]]:
    """{dim name: (value, input name, axis)} read off the inputs' shapes; InputError where two inputs give one
    dim two values. `specs`: [{"name", "dtype", "shape"}] with symbolic dims as names."""
    out: dict[str, tuple[int, str, int]] = {}
    for spec, shape in zip(specs, shapes):
        for axis, (d, n) in enumerate(zip(spec["shape"], shape)):
            if not (isinstance(d, str) and d.isidentifier()):
                continue
            if d in out and out[d][0] != n:
                first = out[d]
                raise InputError(f"{_where(d, spec['name'], axis)} is {n} but {_where(d, first[1], first[2])} is "
                                 f"{first[0]}: both are the dim '{d}', so they must be equal")
            out.setdefault(d, (int(n), spec["name"], axis))
    return out


def check_ranges(specs: Sequence[dict], ranges: dict, shapes: Sequence[Sequence[int]]) -> dict[str, int]:
    """The symbolic dims' values; InputError naming the input, the dim and its declared range when one lies
    outside it (`ranges`: {dim: {"min", "max"}}, None for no bound)."""
    values = dim_values(specs, shapes)
    for d, (n, name, axis) in values.items():
        r = ranges.get(d) or {}
        lo, hi = r.get("min"), r.get("max")
        if (lo is None or n >= lo) and (hi is None or n <= hi):
            continue
        span = f"{'-inf' if lo is None else lo} <= {d} <= {'inf' if hi is None else hi}"
        wider = (f"min={n}" + (f", max={hi}" if hi is not None else "")) if lo is not None and n < lo else \
            (f"min={lo}, " if lo else "") + f"max={max(n, 2 * hi)}"
        raise InputError(f"{_where(d, name, axis)} is {n}, outside the range the model was compiled for "
                         f"({span}); kernels and tables are sized for that range. To accept it, compile with a wider "
                         f"range, e.g. dynamic_shapes={{'{name}': {{{axis}: torch.export.Dim('{d}', {wider})}}}} "
                         "(if the model itself supports such sizes)")
    return {d: v[0] for d, v in values.items()}


def check_inputs(specs: Sequence[dict], ranges: dict, inputs: Sequence[Any], allow_cast: bool = False) -> None:
    """Count, dtype (unless `allow_cast`), rank, static sizes and dim ranges of `inputs` against `specs`."""
    if len(inputs) != len(specs):
        raise InputError(f"the model takes {len(specs)} inputs ({', '.join(s['name'] for s in specs)}), "
                         f"got {len(inputs)}")
    shapes = []
    for spec, x in zip(specs, inputs):
        name, want = spec["name"], spec["dtype"]
        got = dtype_name(x)
        if got != want and not allow_cast:
            raise InputError(f"input '{name}' is {got} but the model expects {want}; cast it (x.astype(np.{want}) / "
                             f"x.to(torch.{want})) or pass allow_cast=True (run.py --allow-cast) to let the runtime "
                             "cast it")
        shape = tuple(int(n) for n in getattr(x, "shape", ()))
        decl = spec["shape"]
        if len(shape) != len(decl):
            raise InputError(f"input '{name}' expects rank {len(decl)} {want}{list(decl)}, got shape {shape}")
        for axis, (d, n) in enumerate(zip(decl, shape)):
            if isinstance(d, int) and d != n:
                raise InputError(f"input '{name}' expects {want}{list(decl)}, got shape {shape}: dim {axis} is "
                                 f"static ({d}) in this compiled model")
        shapes.append(shape)
    check_ranges(specs, ranges, shapes)


def read_checked_index(folder: str, verify: bool = True) -> tuple[dict | None, dict]:
    """(manifest.json or None, plans.json) of an exported folder. With `verify`, every file is first checked
    against the manifest's sha256, and plans.json and each plan, library and constants file it names must be
    listed there; `verify=False` (a folder written without a manifest) skips that, but a manifest that exists is
    still read, so inputs are checked against it."""
    has_manifest = os.path.exists(os.path.join(folder, "manifest.json"))
    manifest = read_manifest(folder) if verify or has_manifest else None
    if verify:
        verify_files(folder, manifest)
        require_listed(folder, manifest, ["plans.json"])
    index = read_json(os.path.join(folder, "plans.json"))
    if verify:
        require_listed(folder, manifest, [e[k] for e in index["plans"] for k in ("plan", "library", "constants")
                                          if e.get(k)])
    return manifest, index
