"""Import-time constant folding: nodes whose inputs are all known evaluate right away.

Numeric tensors fold with the ONNX reference evaluator (exact ONNX semantics), except the few ops in
NUMPY_FOLDS whose reference implementation rejects valid inputs (one numpy line each). Shape tensors holding symbolic dims (object arrays) fold with the small table below,
which covers the shape arithmetic exporters emit (Shape -> Gather/Slice -> Concat -> Reshape).
"""
from __future__ import annotations

import numpy as np
import onnx

from ...ir import dims as D
from .context import ImportContext

# never folded: random, stateful or subgraph ops, and ops our converters handle better
NEVER_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
              "If", "Loop", "Scan", "SequenceMap", "Attention", "RotaryEmbedding", "Dropout"}
MAX_FOLD_INPUT_ELEMENTS = 1 << 22


def fold_node(ctx: ImportContext, node: onnx.NodeProto) -> bool:
    """Evaluate `node` at import time when every input is known; returns whether it did."""
    if node.domain not in ("", "ai.onnx") or node.op_type in NEVER_FOLD:
        return False
    names = [n for n in node.input if n]
    if not all(ctx.is_known(n) for n in names):
        return False
    if node.op_type != "Constant" and not names:
        return False  # e.g. ConstantOfShape without input is still fine to fold below; others have no inputs
    arrays = [ctx.known[n] for n in names]
    if sum(a.size for a in arrays) > MAX_FOLD_INPUT_ELEMENTS:
        return False
    if any(a.dtype == object for a in arrays):
        outs = fold_symbolic(ctx, node)
        if outs is None:
            return False
        outs = [o if isinstance(o, np.ndarray) and o.dtype != object else _tidy(np.asarray(o, dtype=object))
                for o in outs]
    elif node.op_type in NUMPY_FOLDS:
        outs = NUMPY_FOLDS[node.op_type](ctx, node, arrays)
    else:
        outs = _reference_eval(ctx, node)
    for name, arr in zip(node.output, outs):
        if name:
            ctx.known[name] = arr
    return True


def _tidy(arr: np.ndarray) -> np.ndarray:
    """A shape tensor whose dims all became ints again is an ordinary int64 tensor."""
    if all(not isinstance(x, str) for x in arr.reshape(-1).tolist()):
        return arr.astype(np.int64)
    return arr


def _gather_elements(ctx: ImportContext, node: onnx.NodeProto, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """out[..i..] = data[..idx[..i..]..] along `axis`; the indices may be shorter than the data on the other
    axes (BERT's token_type_ids buffer gathered at position_ids), which onnx.reference rejects."""
    data, idx = arrays
    axis = ctx.attr(node, "axis", 0) % data.ndim
    ctx.check(idx.ndim == data.ndim and all(i <= d for a, (i, d) in enumerate(zip(idx.shape, data.shape)) if a != axis),
              f"indices {idx.shape} do not fit data {data.shape} off axis {axis}")
    ctx.check(bool(((idx >= -data.shape[axis]) & (idx < data.shape[axis])).all()),
              f"an index is out of range for axis {axis} of size {data.shape[axis]}")
    rows = tuple(slice(None) if a == axis else slice(0, n) for a, n in enumerate(idx.shape))
    return [np.take_along_axis(data[rows], np.where(idx < 0, idx + data.shape[axis], idx).astype(np.int64), axis)]


# ops folded with numpy instead of the ONNX reference (see the module docstring)
NUMPY_FOLDS = {"GatherElements": _gather_elements}


def _reference_eval(ctx: ImportContext, node: onnx.NodeProto) -> list[np.ndarray]:
    from onnx.reference import ReferenceEvaluator

    feeds = {n: ctx.known[n] for n in node.input if n}
    try:
        ev = ReferenceEvaluator(node, opsets={"": ctx.opsets.get("", 1)})
        return [np.asarray(a) for a in ev.run(None, feeds)]
    except Exception as e:  # the reference rejected it: report in the user's terms
        ctx.fail(f"folding this node on constant inputs failed in the ONNX reference: {type(e).__name__}: {e}")


def _sym(fn):
    return np.frompyfunc(lambda a, b: fn(_dim(a), _dim(b)), 2, 1)


def _dim(x):
    return x if isinstance(x, str) else int(x)


def _div(a, b):
    return D.floordiv(a, b)


SYMBOLIC_BINARY = {"Add": _sym(D.add), "Mul": _sym(D.mul), "Sub": _sym(lambda a, b: D.add(a, D.mul(-1, b))),
                   "Div": _sym(_div)}


def fold_symbolic(ctx: ImportContext, node: onnx.NodeProto) -> list[np.ndarray] | None:
    """Fold shape arithmetic over object arrays of dims; None when the op is not shape arithmetic."""
    op = node.op_type
    ins = [ctx.known[n] if n else None for n in node.input]
    x = ins[0]
    if op == "Cast" and ctx.attr(node, "to") not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32):
        return None  # dims cast to a float (scales, position values): a run-time value (symbolic.py), then Cast
    if op == "CastLike" and ctx.type_of(node.input[1]).dtype not in ("int64", "int32"):
        return None
    if op in ("Identity", "Cast", "CastLike"):
        return [x.copy()]
    if op == "Concat":
        return [np.concatenate([a.astype(object) for a in ins if a is not None], axis=ctx.attr(node, "axis"))]
    if op == "Gather":
        return [np.take(x, ins[1].astype(np.int64), axis=ctx.attr(node, "axis", 0))]
    if op == "Unsqueeze":
        axes = ctx.attr(node, "axes") if len(ins) < 2 else ins[1].astype(np.int64).tolist()
        out = x
        for ax in sorted(a % (x.ndim + len(axes)) for a in axes):
            out = np.expand_dims(out, ax)
        return [out]
    if op == "Squeeze":
        axes = ctx.attr(node, "axes") if len(ins) < 2 else ins[1].astype(np.int64).tolist()
        return [np.squeeze(x, axis=tuple(axes)) if axes is not None else np.squeeze(x)]
    if op == "Slice":
        if any(a is not None and a.dtype == object for a in ins[1:]):
            return None  # symbolic starts/ends (x[:, :seq]): the Slice converter emits an IR Slice with symbolic bounds
        starts, ends = ins[1].astype(np.int64), ins[2].astype(np.int64)
        axes = ins[3].astype(np.int64) if len(ins) > 3 and ins[3] is not None else np.arange(len(starts))
        steps = ins[4].astype(np.int64) if len(ins) > 4 and ins[4] is not None else np.ones(len(starts), np.int64)
        idx = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            idx[int(a)] = slice(int(s), int(e), int(st))
        return [x[tuple(idx)]]
    if op == "Reshape":
        if ins[1].dtype == object:
            return None  # a symbolic target: the Reshape converter handles it (on a run-time value)
        return [x.reshape([int(d) for d in ins[1]])]
    if op in SYMBOLIC_BINARY:
        return [np.asarray(SYMBOLIC_BINARY[op](x, ins[1]), dtype=object)]
    if op == "Equal":
        a, b = np.broadcast_arrays(x, ins[1])
        out = []
        for p, q in zip(a.reshape(-1), b.reshape(-1)):
            if D.equal(_dim(p), _dim(q)):
                out.append(True)
            elif (isinstance(p, str) and not isinstance(q, str) and int(q) < 0) or \
                    (isinstance(q, str) and not isinstance(p, str) and int(p) < 0):
                out.append(False)  # a dim is never negative (the legacy exporter's Equal(shape, -1) guards)
            elif isinstance(p, str) or isinstance(q, str):
                return None  # symbols may still be equal at run time: not decidable now
            else:
                out.append(False)
        return [np.array(out, dtype=bool).reshape(a.shape)]
    if op == "Where" and ins[0].dtype == bool:
        return [np.where(ins[0], ins[1].astype(object), ins[2].astype(object))]
    return None
