"""IndexCopy (a static KV cache written at `cache_position`): a scatter kernel that writes only the new rows.

When the op's data is a graph input the model mutates (`graph.metadata["input_mutations"]`) and nothing else
reads the old value, the kernel writes straight into that input's memory and the op's output is a view of
it: one decode step moves the new K/V rows, never the whole cache. Otherwise the data is first copied to the
output buffer and the rows are written there.
"""
from __future__ import annotations

from tvm.script import tirx as T

from ...ir import Node
from ...ir.kernels import in_place  # noqa: F401  (the grouping decision says which IndexCopy runs in place)
from ...ir import dims as irdims
from .plan import Plan
from .symbolic import SymbolTable


def _three_d(shape, axis: int) -> tuple:
    return (irdims.product(shape[:axis]), shape[axis], irdims.product(shape[axis + 1:]))


def scatter_rows(data_shape, n_rows, dtype: str, index_dtype: str):
    """PrimFunc(data (O, L, I), index (N,), src (O, N, I)): data[o, index[j], i] = src[o, j, i] in place;
    positions outside [0, L) are skipped (torch would raise; a kernel must not write out of bounds)."""
    sym = SymbolTable()
    O, L, I = sym.shape(data_shape)
    N = sym.expr(n_rows)

    @T.prim_func
    def scatter(data: T.Buffer((O, L, I), dtype), index: T.Buffer((N,), index_dtype),
                src: T.Buffer((O, N, I), dtype)):
        T.func_attr({"tir.noalias": True})
        for t in T.parallel(O * N):
            pos = T.bind(T.Cast("int32", index[t % N]))
            if pos >= 0 and pos < L:
                for i in range(I):
                    data[t // N, pos, i] = src[t // N, t % N, i]

    return scatter


def lower_index_copy(plan: Plan, node: Node, shapes: dict, groups, inplace: bool) -> None:
    """Plan steps for one IndexCopy: (copy data to the output unless `inplace`, then) scatter the rows."""
    data, index, src = node.inputs
    out = node.outputs[0].name
    axis = node.op.axis % len(shapes[id(data)])
    d3 = _three_d(shapes[id(data)], axis)
    s3 = _three_d(shapes[id(src)], axis)
    if not inplace:  # out = data, then the rows: an identity kernel scheduled like any injective op
        from tvm import te

        sym = SymbolTable()
        a = te.placeholder(sym.shape(d3), data.dtype, name="in0")
        copy = te.compute(a.shape, lambda *i: a(*i), name="out")
        func = groups.schedule(te.create_prim_func([a, copy]), lambda s: groups.plugin.schedule("injective")(s, "out"),
                               node)
        plan.add_call(groups.func_name(node) + "_copy", func, [plan.arg(data.name, d3), plan.arg(out, d3)],
                      node.name, "IndexCopy.copy")
    func = scatter_rows(d3, s3[1], data.dtype, index.dtype)
    plan.add_call(groups.func_name(node) + "_rows", func,
                  [plan.arg(out, d3), plan.arg(index.name), plan.arg(src.name, s3)], node.name, "IndexCopy")
