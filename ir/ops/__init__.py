"""All IR ops. Importing this package registers every op by name."""
from .attention import Attention, Rotary, Tiling
from .conv import Convolution, Pool
from .attention_spec import AttentionSpec, Feature, MaskSpec, RopeSpec, SpecError, register_feature
from .base import OP_REGISTRY, Op, register_op
from .collectives import COLLECTIVE_OPS, AllGather, AllReduce, AllToAll, Recv, ReduceScatter, Send, message_bytes
from .fused_attention import FusedAttention
from .elementwise import Activation, Binary, Unary, Where
from .linalg import Linear, MatMul
from .norm import BatchNorm, LayerNorm, Reduce, RMSNorm, Softmax
from .scan import CumSum
from .tensor import Cast, Concat, Constant, Expand, Gather, IndexCopy, Reshape, Slice, Transpose
from . import attention_features  # registers the variant feature kinds (MLA, HiLo, MoH, ...)

__all__ = [
    "Op", "OP_REGISTRY", "register_op", "Attention", "Rotary", "Tiling", "AttentionSpec", "MaskSpec", "RopeSpec",
    "Feature", "SpecError", "register_feature", "Unary", "Binary", "Activation", "Where", "MatMul", "Linear",
    "Softmax", "LayerNorm", "RMSNorm", "BatchNorm", "Reduce", "Constant", "Reshape", "Transpose", "Concat", "Slice", "Gather", "IndexCopy",
    "Expand", "Cast", "FusedAttention", "CumSum", "Convolution", "Pool",
    "AllReduce", "AllGather", "ReduceScatter", "AllToAll", "Send", "Recv", "COLLECTIVE_OPS", "message_bytes",
]
