"""`torch.compile(model, backend="attncc")`: each FX graph TorchDynamo captures is compiled by attncc.

Registered through the `torch_dynamo_backends` entry point (pyproject.toml), so no import is needed. Dynamo
hands the backend one GraphModule per graph-break-free region; each is compiled for the cpu target (or the
`target` in `torch.compile(..., options={"target": ...})`) and the rest of the Python program runs as usual.

- Weights: dynamo passes parameters/buffers as graph inputs; they are bound as constants of the compiled
  subgraph (inference: change a weight after compiling and call `torch._dynamo.reset()`).
- Dynamic shapes: sizes dynamo made symbolic (`dynamic=True`, or a recompile after a size change) are
  declared dynamic to attncc (one kernel build for every length); the SymInt arguments dynamo passes are read
  back from the input tensors' sizes. If attncc cannot keep them symbolic, the subgraph is compiled per
  concrete input shape instead (a build per new shape), with a warning.
- Anything attncc cannot compile (an op without a converter, grad-requiring inputs, non-tensor outputs) runs
  eagerly, with a warning naming the reason.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch


class AttnccFallbackWarning(UserWarning):
    """A dynamo subgraph runs eagerly (or per shape) because attncc could not compile it as asked."""


class _Subgraph(torch.nn.Module):
    """The dynamo GraphModule as a module of its tensor inputs: parameters bound, SymInts read from sizes."""

    def __init__(self, gm: torch.fx.GraphModule, kinds: list[tuple], constants: dict[int, torch.Tensor]):
        super().__init__()
        self.gm, self.kinds = gm, kinds
        for i, t in constants.items():
            self.register_buffer(f"const{i}", t.detach(), persistent=False)

    def run(self, tensors):
        args = []
        for kind in self.kinds:
            if kind[0] == "input":
                args.append(tensors[kind[1]])
            elif kind[0] == "const":
                args.append(getattr(self, f"const{kind[1]}"))
            elif kind[0] == "size":
                args.append(tensors[kind[1]].shape[kind[2]])
            else:
                args.append(kind[1])
        out = self.gm(*args)
        return tuple(out) if isinstance(out, (list, tuple)) else out


def _with_inputs(module: _Subgraph, n: int) -> _Subgraph:
    """`module` with forward(in0, ..., in{n-1}): torch.export names each input (dynamic_shapes per name)."""
    names = ", ".join(f"in{i}" for i in range(n))
    scope: dict = {}
    exec(f"def forward(self, {names}):\n    return self.run(({names}{',' if n == 1 else ''}))", scope)  # noqa: S102
    module.forward = scope["forward"].__get__(module)
    return module


def _placeholders(gm: torch.fx.GraphModule) -> list:
    return [n for n in gm.graph.nodes if n.op == "placeholder"]


def _plan(gm: torch.fx.GraphModule, example_inputs: list) -> tuple[list, dict, list, dict]:
    """(kinds, constants, user example tensors, symbol -> (input index, axis)) for `_Subgraph`."""
    kinds, constants, tensors, symbols = [], {}, [], {}
    fakes = [n.meta.get("example_value") for n in _placeholders(gm)]
    for i, ex in enumerate(example_inputs):
        if isinstance(ex, torch.nn.Parameter) or (isinstance(ex, torch.Tensor) and _is_buffer(gm, i)):
            kinds.append(("const", i))
            constants[i] = ex
        elif isinstance(ex, torch.Tensor):
            fake = fakes[i] if i < len(fakes) else None
            for axis, d in enumerate(getattr(fake, "shape", ())):
                if isinstance(d, torch.SymInt) and str(d).isidentifier():
                    symbols.setdefault(str(d), (len(tensors), axis))
            kinds.append(("input", len(tensors)))
            tensors.append(ex)
        else:
            kinds.append(("int", ex))
    for k, kind in enumerate(kinds):
        if kind[0] == "int" and isinstance(kind[1], torch.SymInt):
            name = str(kind[1])
            if name not in symbols:
                raise _Unsupported(f"the size argument {name} is not the size of an input tensor")
            kinds[k] = ("size",) + symbols[name]
    return kinds, constants, tensors, symbols


def _is_buffer(gm: torch.fx.GraphModule, i: int) -> bool:
    """Dynamo names module buffers it lifts to inputs L_self_buffers_* / *_buffers_*."""
    node = _placeholders(gm)[i] if i < len(_placeholders(gm)) else None
    return node is not None and "_buffers_" in node.name


class _Unsupported(Exception):
    pass


def _dynamic_shapes(tensors: list, symbols: dict) -> tuple | None:
    if not symbols:
        return None
    dims = {name: torch.export.Dim(name) for name in symbols}
    spec: list[dict] = [{} for _ in tensors]
    for name, (i, axis) in symbols.items():
        spec[i][axis] = dims[name]
    return {f"in{i}": s or None for i, s in enumerate(spec)}


def attncc_backend(gm: torch.fx.GraphModule, example_inputs: list, **kwargs) -> Callable:
    """The torch.compile backend (see the module docstring). `options={"target": ...}` plus attncc compile
    options."""
    options = dict(kwargs.get("options") or {})
    target = options.pop("target", "cpu")
    if not any(n.op == "call_function" or n.op == "call_method" or n.op == "call_module" for n in gm.graph.nodes):
        return gm.forward   # nothing to compute (a pass-through between graph breaks)
    try:
        if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in example_inputs):
            raise _Unsupported("inputs require grad (attncc compiles inference graphs; call under torch.no_grad())")
        kinds, constants, tensors, symbols = _plan(gm, example_inputs)
        module = _with_inputs(_Subgraph(gm, kinds, constants).eval(), len(tensors))
    except Exception as e:  # noqa: BLE001 - any failure to wrap: eager, with the reason
        return _eager(gm, e)
    # compiled at the first call, outside dynamo's tracing context (torch.export inside the backend callback
    # would add its own guards to the frame dynamo is compiling)
    state: dict = {}

    def run(*args):
        if "fn" not in state:
            state["fn"] = _first_build(module, kinds, args, symbols, target, options, gm)
        return state["fn"](*args)
    return run


def _first_build(module, kinds, args, symbols, target: str, options: dict, gm) -> Callable:
    import attncc

    tensors = tuple(a for a, k in zip(args, kinds) if k[0] == "input")
    try:
        compiled = attncc.compile(module, tensors, target=target, options=options or None,
                                  dynamic_shapes=_dynamic_shapes(list(tensors), symbols))
        return _call(compiled, kinds)
    except Exception as e:  # noqa: BLE001
        if not symbols:
            return _eager(gm, e)
        warnings.warn(f"attncc: subgraph with dynamic sizes {sorted(symbols)} compiled per input shape instead "
                      f"({type(e).__name__}: {str(e).splitlines()[0][:200]})", AttnccFallbackWarning, stacklevel=2)
        return _per_shape(module, kinds, target, options, gm)


def _call(compiled, kinds) -> Callable:
    def run(*args):
        tensors = [a for a, k in zip(args, kinds) if k[0] == "input"]
        out = compiled(*tensors)
        return tuple(out) if isinstance(out, (list, tuple)) else (out,)
    return run


def _per_shape(module: _Subgraph, kinds, target: str, options: dict, gm) -> Callable:
    import attncc

    builds: dict[tuple, Callable] = {}

    def run(*args):
        tensors = [a for a, k in zip(args, kinds) if k[0] == "input"]
        key = tuple(tuple(t.shape) for t in tensors)
        if key not in builds:
            try:
                builds[key] = _call(attncc.compile(module, tuple(tensors), target=target, options=options or None),
                                    kinds)
            except Exception as e:  # noqa: BLE001
                builds[key] = _eager(gm, e)
        return builds[key](*args)
    return run


def _eager(gm: torch.fx.GraphModule, error: Exception) -> Callable:
    reason = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}" if str(error) else type(error).__name__
    warnings.warn(f"attncc could not compile a torch.compile subgraph; it runs eagerly ({reason})",
                  AttnccFallbackWarning, stacklevel=2)
    return gm.forward


__all__ = ["attncc_backend", "AttnccFallbackWarning"]
