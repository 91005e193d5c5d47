"""Helpers for the ONNX frontend tests: one-node models and comparisons with onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

NP_TO_ONNX = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("float16"): TensorProto.FLOAT16,
              np.dtype("int64"): TensorProto.INT64, np.dtype("int32"): TensorProto.INT32, np.dtype("bool"): TensorProto.BOOL}


def single_node_model(op_type: str, inputs: dict[str, np.ndarray], outputs: list[str], domain: str = "",
                      opset: int = 21, initializers: dict[str, np.ndarray] | None = None, input_names=None,
                      **attrs) -> onnx.ModelProto:
    """A model with one node; `input_names` (with '' for absent optionals) defaults to the keys of inputs."""
    initializers = initializers or {}
    names = input_names if input_names is not None else list(inputs)
    node = helper.make_node(op_type, names, outputs, domain=domain, **attrs)
    vis = [helper.make_tensor_value_info(n, NP_TO_ONNX[a.dtype], a.shape) for n, a in inputs.items()]
    inits = [onnx.numpy_helper.from_array(a, n) for n, a in initializers.items()]
    outs = [helper.make_empty_tensor_value_info(o) for o in outputs]
    graph = helper.make_graph([node], op_type.lower(), vis, outs, initializer=inits)
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def run_ort(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)


def run_ir(model: onnx.ModelProto, inputs: dict[str, np.ndarray], **options):
    """Import and run through the IR interpreter; returns (outputs, graph)."""
    from attncc.frontends.onnx_import import import_onnx
    from attncc.ir import run_graph

    g = import_onnx(model, **options)
    names = g.metadata["onnx_inputs"]
    return run_graph(g, {names[k]: v for k, v in inputs.items() if k in names}), g
