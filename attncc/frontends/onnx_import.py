"""ONNX frontend: onnx.ModelProto -> ir.Graph through the (domain, op, opset) converter table.

Import order: initializers become known constants, graph inputs keep their symbolic dims
(dim_param names), nodes whose inputs are all known fold at import time (shape arithmetic,
Range/ConstantOfShape/Trilu buffers), every other node goes through its converter. Then the
post-import pipeline cleans up and lifts attention spelled out in primitives into Attention ops.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelFileError
from ..ir import Graph
from ..ir.passes import PASS_REGISTRY, run_pipeline
from ..ir.passes.pipelines import LIFT
from .onnx_converters import fold_node, lookup
from .onnx_converters.context import ImportContext, ONNXImportError, ir_dtype

POST_IMPORT_PIPELINE = LIFT   # ir/passes/pipelines.py: every pipeline is defined there


def import_onnx(model: onnx.ModelProto, pipeline: str | None = POST_IMPORT_PIPELINE, name: str | None = None,
                check: bool = False) -> Graph:
    """Convert an ONNX model into an IR graph.

    pipeline: passes run after conversion (unregistered ones are skipped; None or "" runs none).
    check: run onnx.checker first. Graph input/output names are the ONNX names where legal;
    `graph.metadata["onnx_inputs"]`/`["onnx_outputs"]` map ONNX names to IR value names.
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        model = load_onnx_file(model)
    check_opsets(model)
    if check:
        onnx.checker.check_model(model)
    opsets = {(o.domain if o.domain != "ai.onnx" else ""): o.version for o in model.opset_import}
    g = Graph(name=name or model.graph.name or "onnx")
    ctx = ImportContext(g, opsets)
    for init in model.graph.initializer:
        ctx.known[init.name] = numpy_helper.to_array(init)
    _add_inputs(ctx, model.graph)
    for node in model.graph.node:
        _convert_node(ctx, node)
    outputs = []
    for out in model.graph.output:
        ctx.node = None
        if out.name not in ctx.values and out.name not in ctx.known:
            raise ONNXImportError(f"graph output '{out.name}' is not produced by any node")
        outputs.append(ctx.value(out.name))
    g.set_outputs(outputs)
    g.metadata["onnx_inputs"] = {i.name: ctx.values[i.name].name for i in model.graph.input if i.name in ctx.values}
    g.metadata["onnx_outputs"] = {o.name: v.name for o, v in zip(model.graph.output, outputs)}
    g.metadata["onnx_opsets"] = dict(opsets)
    g.verify()
    if pipeline:
        text = ",".join(p for p in pipeline.split(",") if p.split("{")[0].strip() in PASS_REGISTRY)
        if "lift-attention" not in PASS_REGISTRY and "lift-attention" in pipeline:
            g.diagnostics.append({"kind": "note", "message": "pass lift-attention is not registered; "
                                  "spelled-out attention stays as primitives"})
        if text:
            g = run_pipeline(g, text)
    return g


def load_onnx_file(path) -> onnx.ModelProto:
    """onnx.load with errors that name the file: unreadable, corrupt (not protobuf), or empty."""
    path = os.fspath(path)
    shown = path.decode(errors="replace") if isinstance(path, bytes) else path
    try:
        model = onnx.load(path)
    except OSError as e:
        raise ModelFileError(f"cannot read ONNX file {shown}: {e.strerror or e}") from e
    except Exception as e:  # noqa: BLE001 — protobuf's DecodeError (and friends) for bytes that are not a ModelProto
        raise ModelFileError(f"{shown} is not a valid ONNX model: {type(e).__name__}: {e} (the file is corrupt, "
                             "truncated or not ONNX)") from e
    if not model.opset_import and not model.graph.node and not model.graph.output:
        raise ModelFileError(f"{shown} is not an ONNX model: it holds no graph and no opset "
                             f"({os.path.getsize(path)} bytes; an empty or truncated file?)")
    check_opsets(model, shown)
    return model


def check_opsets(model: onnx.ModelProto, where: str | None = None) -> None:
    """Reject a default-domain opset newer than the installed onnx package defines (onnxruntime rejects it too)."""
    newest = onnx.defs.onnx_opset_version()
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and o.version > newest:
            raise ONNXImportError(f"{where or 'model ' + repr(model.graph.name)} declares ONNX opset {o.version} for "
                                  f"the default domain; the installed onnx {onnx.__version__} supports opsets up to "
                                  f"{newest}")


def _add_inputs(ctx: ImportContext, graph: onnx.GraphProto) -> None:
    for inp in graph.input:
        if inp.name in ctx.known:  # old-style models list initializers as inputs too
            continue
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise ONNXImportError(f"graph input '{inp.name}' is not a tensor (sequences/maps are not supported)")
        dtype = ir_dtype(tt.elem_type, f"graph input '{inp.name}': ")
        if not tt.HasField("shape"):
            raise ONNXImportError(f"graph input '{inp.name}' has no shape; attncc needs the rank "
                                  "(name unknown dims with dim_param)")
        shape = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                shape.append(int(d.dim_value))
            else:
                # keep the user's symbol; invent a stable one for anonymous dynamic dims
                sym = d.dim_param if d.HasField("dim_param") and d.dim_param.isidentifier() else None
                shape.append(sym or f"{_ident(inp.name)}_dim{i}")
        ctx.values[inp.name] = ctx.graph.add_input(inp.name, dtype, shape)


def _ident(name: str) -> str:
    s = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return s if s and not s[0].isdigit() else "d" + s


def _convert_node(ctx: ImportContext, node: onnx.NodeProto) -> None:
    ctx.node = node
    domain = node.domain if node.domain != "ai.onnx" else ""
    if fold_node(ctx, node):
        return
    fn = lookup(domain, node.op_type, ctx.opsets.get(domain), node.name or node.output[0])
    outs = fn(ctx, node)
    for i, name in enumerate(node.output):
        if not name:
            continue
        v = outs[i] if i < len(outs) else None
        if v is None:  # an output the converter cannot produce is an error only if something reads it
            ctx.unavailable[name] = f"{ctx.where()}output {i} ('{name}') is not produced by this converter"
        elif isinstance(v, np.ndarray):
            ctx.known[name] = v
        else:
            ctx.values[name] = v
