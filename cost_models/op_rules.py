"""How one IR op is counted and priced (the op cost rules; `rules.py` names which op kind uses which).

Each rule takes (node, bind, hw, ctx): the node, a `Binder` for its symbolic dims, the device spec and the
phase context of `analyze.bind_dims`, and returns the op's priced `OpCost`.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from attncc.ir.ops.attention import Tiling
from attncc.ir.types import DTYPE_BYTES

from .attention_cost import attention_cost
from .hardware import HardwareSpec
from .matmul_cost import count_matmul
from .pricing import OpCost, price

if TYPE_CHECKING:   # analyze imports this module (through rules.py); the binder is only a type here
    from .analyze import Binder

# vector FLOPs per output element (elementwise) or per input element (norms): explicit, documented counts
UNARY_FLOPS = {"exp": 1, "log": 1, "sqrt": 1, "rsqrt": 2, "tanh": 1, "sigmoid": 3, "erf": 1, "reciprocal": 1,
               "sin": 1, "cos": 1, "identity": 0}
ACTIVATION_FLOPS = {"relu": 1, "gelu": 8, "gelu_tanh": 8, "silu": 4, "sigmoid": 3, "tanh": 1, "quick_gelu": 5}
# BatchNorm: the backends' per-element expression (x - mean) * rsqrt(var + eps) * w + b: sub, add, rsqrt (2, as
# UNARY_FLOPS), mul, mul, add = 7 (a BatchNorm after a conv/linear is folded away by fold-batch-norm first)
NORM_FLOPS = {"Softmax": 5, "LayerNorm": 8, "RMSNorm": 5, "Reduce": 1, "BatchNorm": 7}
LAYOUT_OPS = ("Transpose", "Concat", "Slice", "Gather", "Expand", "Cast")
VIEW_OPS = ("Reshape",)


def attention_op_rule(node, bind: Binder, hw: HardwareSpec, ctx: dict) -> OpCost:
    """Attention / FusedAttention: the attention counter at the op's tiling (decode: one step against `past`
    keys), plus a fused output projection."""
    op = node.op
    spec = op.spec
    named = dict(zip(spec.input_names(), node.inputs))
    q, k = named["query"], named["key"]
    seq_ax = 2 if spec.layout == "bhsd" else 1
    qs, ks = bind.shape(q, node.name), bind.shape(k, node.name)
    batch, q_len = qs[0], qs[seq_ax] if len(qs) == 4 else qs[-2]
    kv_len = ks[seq_ax] if len(ks) == 4 else ks[-2]
    if spec.kv_cache:
        kv_len += bind.shape(named["past_key"], node.name)[seq_ax]
    if ctx["phase"] == "decode" and kv_len <= q_len:  # no cache in the graph: price one decode step against past keys
        q_len, kv_len = 1, ctx["decode_kv"]
        if spec.mask.causal or spec.mask.window_left is not None:  # the new token sits after the cached ones
            spec = spec.replace(mask=dataclasses.replace(spec.mask, alignment="bottom_right"))
    cost = attention_cost(spec, batch, q_len, kv_len, q.dtype, op.tiling, hw)
    epilogue = getattr(op, "epilogue_names", None)
    if epilogue is not None:  # FusedAttention: the output projection runs in the same kernel
        w = dict(zip(op.input_names(), node.inputs))["out_weight"]
        kin, nout = bind.shape(w, node.name)
        mm = count_matmul(batch * q_len, nout, kin, 1, q.dtype, hw)
        cost.flops += mm.flops
        cost.bytes[hw.main_memory.name] += kin * nout * DTYPE_BYTES[w.dtype]
        cost.details["epilogue_flops"] = mm.flops
        price(cost, hw, q.dtype, "attention")
    cost.details["variant"] = spec.variant
    return cost


def recorded_matmul_tile(node, hw: HardwareSpec, ctx: dict) -> Tiling | None:
    """The output tile the tile pass recorded for this MatMul/Linear on this device (the tile its kernel builds),
    or None (untiled graph, or tiled for another device: the counter's default tile)."""
    graph = ctx.get("graph")
    rec = graph.metadata.get("tiling", {}).get(node.name) if graph is not None else None
    if not rec or "m_block" not in rec or rec.get("target") != hw.name:
        return None
    return Tiling(q_block=rec["m_block"], kv_block=rec["n_block"], target=hw.name)


def matmul_op_rule(node, bind: Binder, hw: HardwareSpec, ctx: dict) -> OpCost:
    """MatMul / Linear: one (batched) GEMM at its recorded tile; a Linear folds its leading dims into M and adds
    its bias."""
    tile = recorded_matmul_tile(node, hw, ctx)
    a, b = node.inputs[0], node.inputs[1]
    sa, sb = bind.shape(a, node.name), bind.shape(b, node.name)
    out = bind.shape(node.outputs[0], node.name)
    m, k, n = sa[-2] if len(sa) >= 2 else 1, sa[-1], sb[-1]
    if node.op.op_name == "Linear" or len(sb) == 2:  # shared weight: fold leading dims into m
        rows = 1
        for d in sa[:-1]:
            rows *= d
        cost = count_matmul(rows, n, k, 1, a.dtype, hw, tile)
    else:
        batch = 1
        for d in out[:-2]:
            batch *= d
        cost = count_matmul(m, n, k, batch, a.dtype, hw, tile)
    if node.op.op_name == "Linear" and getattr(node.op, "has_bias", False):
        cost.vector_flops += cost.details["m"] * n
    return price(cost, hw, a.dtype, "matmul")


def elementwise_op_rule(node, bind: Binder, hw: HardwareSpec, ctx: dict) -> OpCost:
    """Elementwise ops and norms: vector FLOPs per element (the tables above), every input read and the output
    written once."""
    out = node.outputs[0]
    n = bind.numel(out, node.name)
    kind = node.op.op_name
    if kind in NORM_FLOPS:
        per, n_in = NORM_FLOPS[kind], bind.numel(node.inputs[0], node.name)
        vec = per * n_in
    elif kind == "Unary":
        vec = UNARY_FLOPS.get(node.op.fn, 1) * n
    elif kind == "Activation":
        vec = ACTIVATION_FLOPS.get(node.op.kind, 4) * n
    else:
        vec = float(n)
    moved = sum(bind.nbytes(v, node.name) for v in node.inputs if v is not None) + bind.nbytes(out, node.name)
    cost = OpCost(vector_flops=float(vec), main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = float(moved)
    return price(cost, hw, out.dtype, "elementwise")


def layout_op_rule(node, bind: Binder, hw: HardwareSpec, ctx: dict) -> OpCost:
    """Layout ops: a copy (read what is kept, write the output); views move nothing."""
    out = node.outputs[0]
    if node.op.op_name in VIEW_OPS:
        moved = 0.0
        launches = 0
    else:  # a copy: read what is kept, write the output (Gather reads the gathered rows plus the indices)
        ob = bind.nbytes(out, node.name)
        extra = bind.nbytes(node.inputs[1], node.name) if node.op.op_name == "Gather" else 0
        moved, launches = 2.0 * ob + extra, 1
    cost = OpCost(main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = moved
    return price(cost, hw, out.dtype, "layout", launches=launches)


def index_copy_op_rule(node, bind: Binder, hw: HardwareSpec, ctx: dict) -> OpCost:
    """A static KV cache written at positions: read the new rows and the indices, write the rows. Priced as
    the in-place write the backends emit when the data is a mutated input (otherwise they first copy the
    data, which this rule does not count)."""
    _, index, src = node.inputs
    cost = OpCost(main_level=hw.main_memory.name)
    cost.bytes[hw.main_memory.name] = 2.0 * bind.nbytes(src, node.name) + bind.nbytes(index, node.name)
    return price(cost, hw, src.dtype, "layout", launches=1)
