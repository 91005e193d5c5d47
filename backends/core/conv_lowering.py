"""Lowering of a Convolution group (the conv and its fused elementwise epilogue) on any target plugin.

A static output with >= 8 output channels per group: im2col + the target's matmul strategy, per group
(kernels: the column matrix (G, K, N*P padded to 16 columns), weight (G, C_out/G, K) @ cols, then the bias
and epilogue while reading the product back in NC(HW) order; with one group, one image and P % 16 == 0 the
matmul writes the output itself). Depthwise-like convolutions (and conv_algorithm="direct"): the direct form
with the plugin's `conv_schedule` (targets without one get the generic schedule, recorded in the plan notes).
"""
from __future__ import annotations

from tvm import te

from ...ir import Node
from .notes import FALLBACK, LoweringNote
from .te_conv import conv_direct, im2col

ALGORITHMS = ("auto", "im2col", "direct")
MIN_IM2COL_ROWS = 8   # output channels per group below which the direct kernel is used


def choose_algorithm(op, out_shape, plugin, forced: str = "auto") -> str:
    """'im2col' or 'direct' for this convolution; `forced` is the compile option conv_algorithm (auto|im2col|direct,
    im2col only where it applies)."""
    if forced not in ALGORITHMS:
        raise ValueError(f"conv_algorithm={forced!r}; supported: {', '.join(ALGORITHMS)}")
    static = all(isinstance(d, int) for d in out_shape[2:])
    channels = out_shape[1] // op.groups   # output channels per group: the matmul's rows
    can_im2col = static and getattr(plugin, "matmul", None) is not None
    if forced == "direct" or not can_im2col:
        return "direct"
    if forced == "im2col":
        return "im2col"
    # depthwise-like groups give 1-row matmuls: the direct kernel (vectorized along output columns) wins there
    return "im2col" if channels >= MIN_IM2COL_ROWS else "direct"


def build_conv(gb, group):
    """(PrimFunc, plan args, schedule) of the group's main kernel; an im2col step is added to the plan first."""
    anchor: Node = group.anchor
    x_v, w_v = anchor.inputs[0], anchor.inputs[1]
    b_v = anchor.inputs[2] if len(anchor.inputs) > 2 else None
    out_v = anchor.outputs[0]
    out_shape = gb.shapes[id(out_v)]
    algo = choose_algorithm(anchor.op, out_shape, gb.plugin, getattr(gb, "options", {}).get("conv_algorithm", "auto"))
    tensors: dict = {}
    args: list = []
    if algo == "im2col":
        shape, view, acc, fused = _im2col_matmul(gb, anchor, tensors, args)
    else:
        x = gb._placeholder(tensors, args, x_v)
        w = gb._placeholder(tensors, args, w_v)
        shape = view = tuple(out_shape)
        acc = conv_direct(x, w, anchor.op, gb.T(out_shape), name="acc")
    if b_v is not None:
        bias = gb._placeholder(tensors, args, b_v)
        cur = te.compute(gb.T(view), lambda n, c, *i: (acc[(n, c) + i] + bias[c].astype("float32")).astype(out_v.dtype),
                         name="t_anchor")
    else:
        cur = te.compute(gb.T(view), lambda *i: acc[i].astype(out_v.dtype), name="t_anchor")
    inside = {id(out_v): cur}
    for node in group.nodes[1:]:
        ins = []
        for v in node.inputs:
            if id(v) in inside:
                ins.append(inside[id(v)])
            elif gb.shapes[id(v)] == tuple(out_shape):
                ins.append(gb._placeholder(tensors, args, v, view))
            else:  # one element (fusion.py admits only full-size or single-element operands)
                ins.append(gb._placeholder(tensors, args, v, ()))
        cur = gb._builder(node)(node.op, ins, gb.T(view), node.outputs[0].dtype, f"t_{len(inside)}")
        inside[id(node.outputs[0])] = cur
    func, call_args = gb._finish(cur, args, group.root.outputs[0], view)
    if algo == "im2col" and fused:
        sched = lambda s: gb.matmul.schedule(s, "out", "acc")  # noqa: E731
    elif algo == "im2col":   # the epilogue over the padded matmul output
        sched = lambda s: gb.plugin.schedule("injective")(s, "out")  # noqa: E731
    else:
        conv_schedule = gb.plugin.conv_schedule
        if conv_schedule is None:
            gb.plan.notes.append(LoweringNote(anchor.name, FALLBACK, f"node '{anchor.name}' (Convolution): target "
                                              f"{gb.plugin.name} has no conv schedule; used the generic schedule",
                                              "generic schedule"))
            sched = lambda s: gb.plugin.schedule("generic")(s, "out")  # noqa: E731
        else:
            sched = lambda s: conv_schedule(s, "out", "acc", "pad")  # noqa: E731
    return func, call_args, sched


# the matmul strategy's register tiles need a column count with a wide divisor: measured with the cpu target
# (1 thread), (768 x 768) @ (768 x 196) ran at 1.2 GFLOP/s (28-column tiles) and (768 x 192) at 82
COLUMN_MULTIPLE = 16


def _im2col_matmul(gb, anchor, tensors, args):
    """Add the column-matrix kernel (and, unless the matmul can write the output itself, the matmul kernel) to
    the plan; return (output shape, its (N, C_out, P) view, what the main kernel reads as the accumulator,
    whether the main kernel is the matmul itself)."""
    op = anchor.op
    x_v, w_v, out_v = anchor.inputs[0], anchor.inputs[1], anchor.outputs[0]
    w_shape, out_shape = gb.shapes[id(w_v)], gb.shapes[id(out_v)]
    kernel, out_spatial = tuple(w_shape[2:]), tuple(out_shape[2:])
    k_len = w_shape[1]
    for k in kernel:
        k_len *= k
    p_len = 1
    for o in out_spatial:
        p_len *= o
    n, c_out, groups = out_shape[0], out_shape[1], op.groups
    width = -(-(n * p_len) // COLUMN_MULTIPLE) * COLUMN_MULTIPLE
    cols_name = gb.plan.fresh(f"{anchor.name}.cols")
    gb.plan.add_value(cols_name, (groups, k_len, width), x_v.dtype, "buffer")
    # the column matrix: its own injective kernel
    gb.sym = type(gb.sym)()
    c_tensors: dict = {}
    c_args: list = []
    x = gb._placeholder(c_tensors, c_args, x_v)
    cols = im2col(x, op, kernel, out_spatial, width, name="out")
    c_func = te.create_prim_func([t for t, _ in c_args] + [cols])
    c_func = gb.schedule(c_func, lambda s: gb.plugin.schedule("injective")(s, "out"), anchor)
    gb.plan.add_call(gb.func_name(anchor) + "_im2col", c_func, [a for _, a in c_args] + [gb.plan.arg(cols_name)],
                     anchor.name, "Convolution(im2col)")
    # the matmul reads the weight as (G, C_out/G, K) and the columns as (G, K, width)
    gb.sym = type(gb.sym)()
    fused = groups == 1 and n == 1 and width == p_len   # its (1, C_out, P) output is the conv's output
    m_tensors, m_args = (tensors, args) if fused else ({}, [])
    w = gb._placeholder(m_tensors, m_args, w_v, (groups, c_out // groups, k_len))
    b = te.placeholder((groups, k_len, width), x_v.dtype, name=f"in{len(m_args)}")
    m_args.append((b, gb.plan.arg(cols_name)))
    acc = gb.matmul.compute(w, b, width, False, "acc")
    if fused:
        return out_shape, (n, c_out, p_len), acc, True
    raw_name = gb.plan.fresh(f"{anchor.name}.product")
    gb.plan.add_value(raw_name, (groups, c_out // groups, width), "float32", "buffer")
    raw = te.compute(acc.shape, lambda *i: acc(*i), name="out")
    m_func = te.create_prim_func([t for t, _ in m_args] + [raw])
    m_func = gb.schedule(m_func, lambda s: gb.matmul.schedule(s, "out", "acc"), anchor)
    gb.plan.add_call(gb.func_name(anchor) + "_matmul", m_func, [a for _, a in m_args] + [gb.plan.arg(raw_name)],
                     anchor.name, "Convolution(matmul)")
    # the main kernel reads the product back in (N, C_out, P) order, cropping the padded columns
    gb.sym = type(gb.sym)()
    product = te.placeholder((groups, c_out // groups, width), "float32", name=f"in{len(args)}")
    args.append((product, gb.plan.arg(raw_name)))
    per = c_out // groups
    view = te.compute((n, c_out, p_len), lambda i, c, p: product[c // per, c % per, i * p_len + p], name="t_crop")
    return out_shape, (n, c_out, p_len), view, False
