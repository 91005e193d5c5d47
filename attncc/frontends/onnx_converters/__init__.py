"""ONNX converters, one module per op family; importing this package fills the table in `registry`."""
from . import attention, indexing, math_ops, ms_fused, ms_ops, rotary, tensor_ops, unsupported  # noqa: F401  (registration)
from . import conv  # noqa: F401  (Conv and pooling)
from . import symbolic  # noqa: F401  (Range and symbolic dims used as run-time data)
from .context import ImportContext, ONNXImportError
from .folding import fold_node
from .registry import CONVERTERS, UnsupportedONNXOpError, converter, lookup, supported_ops

__all__ = ["CONVERTERS", "ImportContext", "ONNXImportError", "UnsupportedONNXOpError", "converter", "fold_node",
           "lookup", "supported_ops"]
