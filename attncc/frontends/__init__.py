"""Frontends: torch.export and ONNX into the IR. They never import tvm.

`import_model` dispatches on the model's type; each frontend lives in its own module
and is imported lazily so that ONNX users need not import torch and vice versa.
"""
from __future__ import annotations

import os
from typing import Any

from ..ir import Graph


class UnsupportedModelError(TypeError):
    """The object given as a model is not something attncc can import."""


def import_model(model: Any, example_inputs: Any = None, **options) -> Graph:
    """Import a torch.nn.Module (needs example inputs), an onnx.ModelProto, a path to .onnx, or an ir.Graph."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not path.endswith(".onnx"):
            raise UnsupportedModelError(f"cannot import {path!r}: only .onnx files are read from paths")
        from .onnx_import import import_onnx, load_onnx_file

        return import_onnx(load_onnx_file(path), **options)
    module = type(model).__module__
    if module.startswith("onnx"):
        from .onnx_import import import_onnx

        return import_onnx(model, **options)
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(model, (torch.nn.Module, torch.export.ExportedProgram)):
        from .torch_import import import_torch

        return import_torch(model, example_inputs, **options)
    raise UnsupportedModelError(
        f"cannot import a {type(model).__name__}: pass a torch.nn.Module with example_inputs, "
        "a torch.export.ExportedProgram, an onnx.ModelProto, a path to a .onnx file, or an attncc.ir.Graph")
