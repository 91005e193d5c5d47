"""Build one fused group (see fusion.py) into a scheduled TVM PrimFunc and its plan call.

Target-neutral: schedules and the matmul strategy come from the target plugin."""
from __future__ import annotations

from tvm import te

from ... import ir
from ...ir import Node
from . import te_layout
from .conv_lowering import build_conv
from .errors import LoweringError
from .notes import FALLBACK, LoweringNote
from .fusion import Group
from .plan import Plan
from .symbolic import SymbolTable
from ...ir.kernels.pow_exponents import constant_exponent
from .te_elementwise import constant_pow
from .te_ops import TE_OPS, batched_matmul_full


def _numel(shape):
    """Product of IR dims: an int, or the canonical text of a symbolic product."""
    return ir.dims.product(shape)


class GroupBuilder:
    """Turns groups into PrimFuncs registered on a Plan. `shapes` maps id(Value) -> concrete shape."""

    def __init__(self, graph: ir.Graph, plan: Plan, shapes: dict[int, tuple], dims: dict[str, int],
                 constants: dict, plugin):
        self.graph, self.plan, self.shapes, self.dims, self.constants = graph, plan, shapes, dims, constants
        self.plugin = plugin
        self.matmul = plugin.matmul
        self.sym = SymbolTable()   # fresh per kernel (see symbolic.py)
        self.count = 0

    def T(self, shape) -> tuple:
        """IR dims -> kernel shape (ints and this kernel's TIR variables)."""
        return self.sym.shape(shape)

    # ---- helpers -------------------------------------------------------------------------
    def func_name(self, node: Node) -> str:
        self.count += 1
        safe = "".join(c if c.isalnum() else "_" for c in node.name)[:40]
        return f"k{self.count}_{safe}"

    def _builder(self, node: Node):
        if node.op.op_name == "Slice":
            n = self.shapes[id(node.inputs[0])][node.op.axis]
            start = _try_eval(node.op.start, self.dims)
            stop = None if node.op.stop is None else _try_eval(node.op.stop, self.dims)
            if isinstance(n, int) and isinstance(start, int) and (stop is None or isinstance(stop, int)):
                s0, _, step = slice(start, stop, node.op.step).indices(n)
            elif isinstance(start, int) and start >= 0 and node.op.step > 0:
                s0, step = start, node.op.step   # a symbolic extent: a non-negative start needs no clamping
            elif isinstance(start, str) and node.op.step > 0:
                s0, step = self.sym.expr(start), node.op.step
            else:
                raise LoweringError(node.name, "Slice", f"slice start {node.op.start!r} over a symbolic dim {n!r}: "
                                    "only non-negative starts and positive steps are shape-generic")
            return te_layout.make_slice(s0, step)
        if node.op.op_name == "Binary" and node.op.fn == "pow":
            exponent = constant_exponent(self.graph, node)
            fast = None if exponent is None else constant_pow(exponent, node.inputs[0].dtype)
            if fast is not None:
                return fast
        return TE_OPS[node.op.op_name]

    def build(self, group: Group) -> None:
        """Define, schedule and register the group's kernel; errors name the group's last node."""
        root = group.root
        self.sym = SymbolTable()
        try:
            if group.kind == "matmul":
                func, args, sched = self._matmul(group)
            elif group.kind == "gated":
                func, args, sched = self._gated(group)
            elif group.kind == "conv":
                func, args, sched = build_conv(self, group)
            else:
                func, args = self._plain(group)
                sched = self.plugin.schedule("rows" if group.kind == "rows" else "injective")
                sched = (lambda f: (lambda s: f(s, "out")))(sched)
        except LoweringError:
            raise
        except Exception as e:
            raise LoweringError(root.name, root.op.op_name, "defining its TVM compute failed", e) from e
        func = self.schedule(func, sched, root)
        self.plan.add_call(self.func_name(root), func, args, root.name, "+".join(n.op.op_name for n in group.nodes))

    def schedule(self, func, sched, root: Node):
        """Apply `sched`; if it does not apply to this shape, fall back to the generic schedule (with a note)."""
        from tvm import s_tir

        try:
            s = s_tir.Schedule(func)
            sched(s)
            return s.mod["main"]
        except Exception as first:  # noqa: BLE001 - any schedule failure: fall back to a correct schedule
            try:
                s = s_tir.Schedule(func)
                self.plugin.schedule("generic")(s, "out")
                self.plan.notes.append(LoweringNote(
                    root.name, FALLBACK, f"node '{root.name}' ({root.op.op_name}): used the generic schedule "
                    f"({type(first).__name__}: {str(first).splitlines()[0][:120]})", "generic schedule"))
                return s.mod["main"]
            except Exception as e:
                raise LoweringError(root.name, root.op.op_name, "scheduling its kernel failed", e) from e

    def _placeholder(self, tensors: dict, args: list, value, shape=None) -> te.Tensor:
        key = (value.name, tuple(shape) if shape is not None else None)
        if key not in tensors:
            shp = tuple(shape if shape is not None else self.shapes[id(value)])
            t = te.placeholder(self.T(shp), value.dtype, name=f"in{len(args)}")
            tensors[key] = t
            args.append((t, self.plan.arg(value.name, shp)))
        return tensors[key]

    def _finish(self, out: te.Tensor, ins: list, out_value, out_shape) -> tuple:
        out = te.compute(out.shape, lambda *i: out(*i), name="out") if out.op.name != "out" else out
        scalars = self.sym.scalar_params([t for t, _ in ins] + [out])
        func = te.create_prim_func([t for t, _ in ins] + [out] + [v for v, _ in scalars])
        return func, ([a for _, a in ins] + [self.plan.arg(out_value.name, out_shape)]
                      + [Plan.dim_arg(text) for _, text in scalars])

    # ---- injective and row groups -------------------------------------------------------------
    def _plain(self, group: Group):
        inside: dict[int, te.Tensor] = {}
        tensors: dict = {}
        args: list = []
        out = None
        for node in group.nodes:
            ins = [inside[id(v)] if id(v) in inside else self._placeholder(tensors, args, v) for v in node.inputs]
            v = node.outputs[0]
            name = "out" if node is group.root else f"t_{len(inside)}"
            out = self._builder(node)(node.op, ins, self.T(self.shapes[id(v)]), v.dtype, name)
            inside[id(v)] = out
        return self._finish(out, args, group.root.outputs[0], self.shapes[id(group.root.outputs[0])])

    # ---- matmul groups ---------------------------------------------------------------------------
    def _matmul(self, group: Group):
        anchor = group.anchor
        a_v, b_v = anchor.inputs[0], anchor.inputs[1]
        a_shape, b_shape = self.shapes[id(a_v)], self.shapes[id(b_v)]
        out_v = anchor.outputs[0]
        out_shape = self.shapes[id(out_v)]
        tensors: dict = {}
        args: list = []
        k_len, n = a_shape[-1], out_shape[-1]
        if anchor.op.op_name == "Linear":
            m = _numel(a_shape[:-1])
            bt = 1
            a = self._placeholder(tensors, args, a_v, (1, m, k_len))
            if b_v.producer is not None and b_v.producer.op.op_name == "Constant":
                b = self._packed_weight(tensors, args, b_v)
                packed = True
            else:
                b = self._placeholder(tensors, args, b_v, (1, k_len, n))
                packed = False
        else:
            batch = out_shape[:-2]
            bt, m = _numel(batch), out_shape[-2]
            a_view = self._batch_view(a_shape, batch)
            b_view = self._batch_view(b_shape, batch)
            if a_view is None or b_view is None:  # irregular broadcasting: full-rank compute, generic schedule
                return self._plain_matmul(group) + (lambda s: self.plugin.schedule("generic")(s, "out"),)
            a = self._placeholder(tensors, args, a_v, a_view)
            b = self._placeholder(tensors, args, b_v, b_view)
            packed = False
        acc = self.matmul.compute(a, b, self.sym.expr(n), packed, "acc")
        shape3 = (bt, m, n)
        cur = te.compute(self.T(shape3), lambda *i: acc(*i).astype(out_v.dtype), name="t_anchor")
        if anchor.op.op_name == "Linear" and anchor.op.has_bias:
            bias = self._placeholder(tensors, args, anchor.inputs[2])
            cur = te.compute(self.T(shape3), lambda bi, mi, ni: (acc[bi, mi, ni] + bias[ni].astype("float32")).astype(out_v.dtype),
                             name="t_bias")
        inside = {id(out_v): cur}
        for node in group.nodes[1:]:
            ins = []
            for v in node.inputs:
                if id(v) in inside:
                    ins.append(inside[id(v)])
                elif self.shapes[id(v)] == out_shape:
                    ins.append(self._placeholder(tensors, args, v, shape3))
                else:  # a row (bias/scale) or a scalar: right-aligned broadcast against (Bt, M, N)
                    s = self.shapes[id(v)]
                    ins.append(self._placeholder(tensors, args, v, (s[-1],) if s else ()))
            cur = self._builder(node)(node.op, ins, self.T(shape3), node.outputs[0].dtype, f"t_{len(inside)}")
            inside[id(node.outputs[0])] = cur
        tile = self._recorded_tile(anchor)
        return self._finish(cur, args, group.root.outputs[0], shape3) + (
            lambda s: self.matmul.schedule(s, "out", "acc", tile=tile),)

    def _gated(self, group: Group):
        """act(x @ Wg) * (x @ Wu) [+ epilogue]: one accumulator over interleaved panels (16 gate
        columns, then the same 16 up columns), split back per output column in the epilogue."""
        linears = [n for n in group.nodes if n.op.op_name == "Linear"]
        gate, up = linears
        x_v, out_v = gate.inputs[0], group.root.outputs[0]
        x_shape = self.shapes[id(x_v)]
        k_len, n = x_shape[-1], self.shapes[id(gate.outputs[0])][-1]
        m = _numel(x_shape[:-1])
        tensors: dict = {}
        args: list = []
        a = self._placeholder(tensors, args, x_v, (1, m, k_len))
        wg, wu = gate.inputs[1], up.inputs[1]
        name = f"{wg.name}+{wu.name}.gated"
        gate_cols, panel = self.matmul.gate_cols, self.matmul.panel
        shape = (n // gate_cols, k_len, panel)
        if name not in self.plan.values:
            self.plan.add_value(name, shape, wg.dtype, "const", source=wg.producer.op.key,
                                source_up=wu.producer.op.key, pack="gated")
        b = te.placeholder(shape, wg.dtype, name=f"in{len(args)}")
        args.append((b, self.plan.arg(name)))
        acc = self.matmul.compute(a, b, 2 * n, True, "acc")
        shape3 = (1, m, n)

        def half(offset, dtype):
            return lambda bi, mi, ni: acc[bi, mi, ni // gate_cols * panel + offset + ni % gate_cols].astype(dtype)

        inside = {id(gate.outputs[0]): te.compute(self.T(shape3), half(0, gate.outputs[0].dtype), name="t_gate"),
                  id(up.outputs[0]): te.compute(self.T(shape3), half(gate_cols, up.outputs[0].dtype), name="t_up")}
        cur = None
        for node in group.nodes:
            if node in linears:
                continue
            ins = []
            for v in node.inputs:
                if id(v) in inside:
                    ins.append(inside[id(v)])
                elif self.shapes[id(v)] == self.shapes[id(out_v)]:
                    ins.append(self._placeholder(tensors, args, v, shape3))
                else:  # a row (bias/scale) or a scalar: right-aligned broadcast
                    s = self.shapes[id(v)]
                    ins.append(self._placeholder(tensors, args, v, (s[-1],) if s else ()))
            cur = self._builder(node)(node.op, ins, self.T(shape3), node.outputs[0].dtype, f"t_{len(inside)}")
            inside[id(node.outputs[0])] = cur
        tile = self._recorded_tile(gate)
        return self._finish(cur, args, out_v, shape3) + (
            lambda s: self.matmul.schedule(s, "out", "acc", gate_cols, tile=tile),)

    def _recorded_tile(self, node: Node) -> dict | None:
        """The tile pass's record for a matmul node (the tile the target's kernel builds when it fits)."""
        return self.graph.metadata.get("tiling", {}).get(node.name)

    def _batch_view(self, shape, batch):
        """(B?, rows, cols) view of a matmul operand: batch dims equal the output's, or are all 1."""
        lead = tuple(shape[:-2])
        if lead == tuple(batch)[len(batch) - len(lead):] and _numel(lead) == _numel(batch):
            return (_numel(batch), shape[-2], shape[-1])
        if _numel(lead) == 1:
            return (1, shape[-2], shape[-1])
        return None

    def _packed_weight(self, tensors, args, w_v):
        name = f"{w_v.name}.panels"
        k_len, n = self.shapes[id(w_v)]
        if name not in self.plan.values:
            self.plan.add_value(name, self.matmul.packed_shape(k_len, n), w_v.dtype, "const", source=w_v.producer.op.key, pack="panels")
        key = (name, None)
        if key not in tensors:
            t = te.placeholder(self.matmul.packed_shape(k_len, n), w_v.dtype, name=f"in{len(args)}")
            tensors[key] = t
            args.append((t, self.plan.arg(name)))
        return tensors[key]

    def _plain_matmul(self, group: Group):
        anchor = group.anchor
        tensors: dict = {}
        args: list = []
        a = self._placeholder(tensors, args, anchor.inputs[0])
        b = self._placeholder(tensors, args, anchor.inputs[1])
        out_v = group.root.outputs[0]
        if len(group.nodes) > 1:
            raise LoweringError(anchor.name, "MatMul", "internal: irregular-broadcast matmul with an epilogue")
        out = batched_matmul_full(a, b, self.T(self.shapes[id(out_v)]), out_v.dtype, "out")
        func = te.create_prim_func([t for t, _ in args] + [out])
        return func, [x for _, x in args] + [self.plan.arg(out_v.name)]


def _try_eval(d, env: dict):
    """An IR dim evaluated with `env` when every symbol is known (static plans), else left symbolic."""
    try:
        return ir.dims.evaluate(d, env)
    except KeyError:
        return ir.dims.canonical(d)
