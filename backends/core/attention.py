"""Lowering of Attention nodes: the hand-scheduled flash kernels when the spec fits them, else
correct fallbacks, each fallback recorded in the plan notes with its reason.

Paths, in order of preference:
1. kernel: RoPE (a Rotary prologue kernel), KV-cache concat (writes present_key/value) and bshd
   transposes are lowered as small scheduled kernels around `build_attention_kernel`;
2. te-fallback: the generic TE attention (kv_lengths, softcap after an additive mask, kernels
   missing or failing to build);
3. reference: variant features (kv_source / head_mixing / score_mods) are normally decomposed into
   plain Attention + IR ops before lowering (backend.decompose_variants); the ones the pass could not
   rewrite run their numpy reference on the host, the note quoting the pass's reason.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from tvm import te

from ...ir import Node
from ...ir import dims as irdims
from ...ir.interpreter import FEATURE_REFERENCES, attention_reference
from ...ir.kernels import FusionRules, attention_parts, kernel_blocker, mask_needs_copy
from ...ir.kernels.attention_parts import host_features
from ...ir.ops import Rotary
from . import te_layout
from .attention_config import AttentionKernelConfig
from .dedupe import attention_primfunc_once
from .errors import LoweringError
from .notes import FALLBACK, TILE, LoweringNote
from .symbolic import SymbolTable, static_int
from .plan import Plan
from .te_attention import attention_compute
from .te_elementwise import load


class AttentionLowering:
    """Emits plan steps for one Attention node. `groups` is the GroupBuilder (for naming, scheduling)."""

    def __init__(self, plan: Plan, groups, shapes: dict[int, tuple], target: dict, options: dict, plugin,
                 nominal: dict[str, int] | None = None, rules: FusionRules = FusionRules()):
        self.plan, self.groups, self.shapes, self.target, self.options = plan, groups, shapes, target, options
        self.plugin = plugin
        self.rules = rules       # the target's parameters of the grouping decision (attncc.ir.kernels)
        self.parts: list[str] = []
        # folded slices and views over them: value name -> (source plan value, IR nodes from it, the value)
        self.virtual: dict[str, tuple[str, list[Node], Any]] = {}
        self.nominal = nominal or {}   # sizes of the first call: they pick schedules of shape-generic kernels
        self.references: dict[int, Node] = {}        # step index -> node run by the numpy reference

    def fold(self, node: Node) -> None:
        """Record a folded Slice (or a Reshape of one): the prologue kernels reading it compute it in place."""
        src = node.inputs[0]
        base, chain = (self.virtual[src.name][0], self.virtual[src.name][1]) if src.name in self.virtual else (src.name, [])
        self.virtual[node.outputs[0].name] = (base, chain + [node], node.outputs[0])

    def _info(self, name: str) -> tuple[list, str]:
        """(shape, dtype) of a plan value or of a virtual (folded) one."""
        if name in self.virtual:
            v = self.virtual[name][2]
            return list(self.shapes[id(v)]), v.dtype
        return self.plan.values[name]["shape"], self.plan.values[name]["dtype"]

    def _input(self, sym: SymbolTable, name: str, i: int) -> tuple[te.Tensor, te.Tensor, str]:
        """(placeholder, tensor the kernel reads, plan value passed): a folded value is computed from its source."""
        base, chain, _ = self.virtual.get(name, (name, [], None))
        ph = te.placeholder(sym.shape(self.plan.values[base]["shape"]), self.plan.values[base]["dtype"], name=f"in{i}")
        t = ph
        for k, node in enumerate(chain):
            v = node.outputs[0]
            shape = sym.shape(self.shapes[id(v)])
            if node.op.op_name == "Slice":
                t = te_layout.make_slice(node.op.start, node.op.step)(node.op, [t], shape, v.dtype, f"fold{i}_{k}")
            else:
                t = _reshape(t, shape, f"fold{i}_{k}")
        return ph, t, base

    # ---- small kernels around the attention kernel ------------------------------------------
    def emit(self, node: Node, label: str, fn, inputs: list[str], out_name: str, schedule=None) -> None:
        """Compile `fn(*te_inputs) -> te.Tensor` (named "out") writing plan value `out_name`."""
        sym = SymbolTable()
        ins = [self._input(sym, n, i) for i, n in enumerate(inputs)]
        phs = [p for p, _, _ in ins]
        try:
            out = fn(*[t for _, t, _ in ins])
            scalars = sym.scalar_params(phs + [out])
            func = te.create_prim_func(phs + [out] + [v for v, _ in scalars])
        except Exception as e:
            raise LoweringError(node.name, "Attention", f"defining its {label} kernel failed", e) from e
        func = self.groups.schedule(func, schedule or (lambda s: self.plugin.schedule("injective")(s, "out")), node)
        args = [self.plan.arg(b) for _, _, b in ins] + [self.plan.arg(out_name)] + [Plan.dim_arg(t) for _, t in scalars]
        self.plan.add_call(self.groups.func_name(node) + "_" + label, func, args, node.name, f"Attention.{label}")

    def temp(self, node: Node, label: str, shape, dtype: str) -> str:
        return self.plan.add_value(self.plan.fresh(f"{node.name}.{label}"), shape, dtype, "buffer")

    # ---- main entry ------------------------------------------------------------------------------
    def lower(self, node: Node) -> None:
        """Emit the kernels `attention_parts` decides for `node` (the cost report prices the same list)."""
        spec = node.op.spec
        self.parts = parts = attention_parts(node, self.shapes, self.rules)
        feats = host_features(spec, self.rules)   # alibi on cpu: the kernel's own score mod
        if feats:
            return self._reference(node, feats)
        named = dict(zip(spec.input_names(), node.inputs))
        names = {k: v.name for k, v in named.items()}
        q, k, v = names["query"], names["key"], names["value"]
        dtype = named["query"].dtype
        bshd = spec.layout == "bshd"
        # bshd: canonicalize to bhsd with transposes (the RoPE kernel reads bshd q/k itself, one pass fewer);
        # the output is transposed back below
        if bshd:
            q, k, v = (self._transpose(node, n, lbl) if f"{lbl}_bhsd" in parts else n
                       for n, lbl in ((q, "q"), (k, "k"), (v, "v")))
        if spec.rope is not None:
            cos, sin = names["rope_cos"], names["rope_sin"]
            rot = Rotary(style=spec.rope.style, rotary_dim=spec.rope.rotary_dim)
            for lbl in ("q", "k"):
                src = q if lbl == "q" else k
                shape = self._info(src)[0]
                dst = self.temp(node, f"{lbl}_rope", _perm_shape(shape) if bshd else shape, dtype)
                self.emit(node, f"rope_{lbl}", lambda x, c, s, d=dtype: te_layout.rotary(
                    rot, [_bhsd_view(x) if bshd else x, c, s], _perm_shape(x.shape) if bshd else x.shape, d, "out"),
                    [src, cos, sin], dst)
                q, k = (dst, k) if lbl == "q" else (q, dst)
        if spec.kv_cache:
            k, v = self._cache(node, names, k, v, bshd)
        out_value = node.outputs[0].name
        out = self.temp(node, "out_bhsd", self._out_bhsd(node), dtype) if bshd else out_value
        reason = kernel_blocker(spec, self.rules) if "attention_te" in parts else None
        if reason is None:
            reason = self._try_kernel(node, q, k, v, names.get("mask"), out, dtype)
        if reason is not None and _t5(spec) is not None:   # the TE attention has no bucket rule: the reference
            return self._reference(node, spec.features_list())
        if reason is not None:
            self.plan.notes.append(LoweringNote(node.name, FALLBACK, f"node '{node.name}' (Attention {spec.variant}): "
                                                f"used the generic TE attention because {reason}", "generic TE attention"))
            self._te_fallback(node, q, k, v, names.get("mask"), names.get("kv_lengths"), out, dtype)
        if bshd:
            self.emit(node, "out_bshd", lambda x: te_layout.transpose(_Perm((0, 2, 1, 3)), [x], _perm_shape(x.shape),
                                                                         x.dtype, "out"), [out], out_value)

    # ---- pieces --------------------------------------------------------------------------------
    def _out_bhsd(self, node: Node):
        s = self.shapes[id(node.outputs[0])]
        return (s[0], s[2], s[1], s[3])

    def _transpose(self, node: Node, name: str, label: str) -> str:
        shape, dtype = self._info(name)
        dst = self.temp(node, f"{label}_bhsd", _perm_shape(shape), dtype)
        self.emit(node, f"{label}_bhsd", lambda x: te_layout.transpose(_Perm((0, 2, 1, 3)), [x], _perm_shape(x.shape),
                                                                        x.dtype, "out"), [name], dst)
        return dst

    def _cache(self, node: Node, names: dict, k: str, v: str, bshd: bool) -> tuple[str, str]:
        """present = concat(past, new) along the sequence; written straight into the node's outputs."""
        outs = []
        past_value = {v.name: v for v in node.inputs if v is not None}
        for past_name, new, out_v in ((names["past_key"], k, node.outputs[1]), (names["past_value"], v, node.outputs[2])):
            if self.shapes[id(past_value[past_name])][1 if bshd else 2] == 0:   # attention_parts: one copy
                # empty past (a first step): present = the new rows; no kernel touches the zero-size buffer
                # (its transpose would not schedule, and TVM rejects its zero strides at run time)
                self.emit(node, "present_bshd" if bshd else "kv_cache", lambda x: te_layout.transpose(
                    _Perm((0, 2, 1, 3) if bshd else (0, 1, 2, 3)), [x], _perm_shape(x.shape) if bshd else x.shape,
                    x.dtype, "out"), [new], out_v.name)
                outs.append(new)
                continue
            past = self._transpose(node, past_name, "past") if bshd else past_name
            ps, ns = self.plan.values[past]["shape"], self.plan.values[new]["shape"]
            shape = (ps[0], ps[1], irdims.add(ps[2], ns[2]), ps[3])
            dst = self.temp(node, "present_bhsd", shape, self.plan.values[new]["dtype"]) if bshd else out_v.name
            self.emit(node, "kv_cache", lambda a, b: te_layout.concat(
                _Axis(2), [a, b], (a.shape[0], a.shape[1], a.shape[2] + b.shape[2], a.shape[3]), a.dtype, "out"),
                      [past, new], dst)
            if bshd:
                self.emit(node, "present_bshd", lambda x: te_layout.transpose(_Perm((0, 2, 1, 3)), [x],
                                                                              _perm_shape(x.shape), x.dtype, "out"),
                          [dst], out_v.name)
            outs.append(dst)
        return outs[0], outs[1]

    def _config(self, node: Node, q: str, k: str, dtype: str, mask_kind: str):
        spec, tiling = node.op.spec, node.op.tiling
        b, hq, sq, d = self.plan.values[q]["shape"]
        _, hkv, skv, _ = self.plan.values[k]["shape"]
        dynamic = tuple(name for name, dim in (("batch", b), ("q_len", sq), ("kv_len", skv)) if isinstance(dim, str))
        b, sq, skv = (irdims.evaluate(x, self.nominal) for x in (b, sq, skv))
        base = dict(batch=b, q_heads=hq, kv_heads=hkv, q_len=sq, kv_len=skv, head_dim=d, v_head_dim=spec.v_head_dim,
                    dynamic=dynamic,
                    scale=float(spec.scale), dtype=dtype, causal=spec.mask.causal, alignment=spec.mask.alignment,
                    window_left=spec.mask.window_left, window_right=spec.mask.window_right,
                    softcap=spec.softcap, mask_input=mask_kind, alibi=_alibi(spec), t5_bias=_t5(spec),
                    v_from_k=self.groups.graph.metadata.get("kernel_hints", {}).get(node.name) == "v-from-k")
        blocks = {}
        if tiling is not None:
            blocks = {f: getattr(tiling, f) for f in ("q_block", "kv_block", "num_splits") if getattr(tiling, f)}
        try:
            return AttentionKernelConfig(**base, **blocks)
        except ValueError as e:
            if not blocks:
                raise
            self.plan.notes.append(LoweringNote(node.name, TILE, f"node '{node.name}': tiling {blocks} rejected by the "
                                                f"kernel ({e}); default blocks used"))
            return AttentionKernelConfig(**base)

    def _mask_arg(self, node: Node, mask: str, q: str, k: str, kind: str) -> list:
        """The mask as the kernel wants it: (1|B, 1|Hq, Sq, Skv), uint8 keep-mask or fp32 bias."""
        b, hq, sq, _ = self.plan.values[q]["shape"]
        skv = self.plan.values[k]["shape"][2]
        info = self.plan.values[mask]
        shape = [1] * (4 - len(info["shape"])) + list(info["shape"])
        want_dtype = "uint8" if kind == "bool" else "float32"
        # plugins whose kernel indexes the mask at (b, h) with no broadcast (mobile-gpu) get it full-size
        full_only = self.rules.attention_mask_full
        if not mask_needs_copy(node.op.spec, (b, hq, sq, None), skv, info["shape"], info["dtype"], self.rules):
            return self.plan.arg(mask, shape, want_dtype)
        full = (b, hq, sq, skv) if full_only else \
            (shape[0] if shape[0] in (1, b) else b, shape[1] if shape[1] in (1, hq) else hq, sq, skv)
        dst = self.temp(node, "mask", full, "bool" if kind == "bool" else "float32")
        self.emit(node, "mask", lambda m: te.compute(full, lambda *i: load(m, i, full).astype(
            "bool" if kind == "bool" else "float32"), name="out"), [mask], dst)
        return self.plan.arg(dst, full, want_dtype)

    def _try_kernel(self, node: Node, q: str, k: str, v: str, mask: str | None, out: str, dtype: str) -> str | None:
        kind = "table" if _t5(node.op.spec) is not None else node.op.spec.mask.input
        if kind == "table":   # the kept bucketed_bias: its (H, buckets) table is the kernel's mask argument
            table = dict(zip(node.op.spec.input_names(), node.inputs))["rel_table"]
            if table.dtype != "float32":
                return f"the bucketed_bias table is {table.dtype}; the flash kernel reads a float32 table"
        try:
            cfg = self._config(node, q, k, dtype, kind)
            func, meta = attention_primfunc_once(self.plugin, cfg, self.target)   # once per distinct kernel
        except LoweringError as e:
            if getattr(e, "fatal", False):   # e.g. a tile over the device's limits: an error naming this node
                raise LoweringError(node.name, "Attention", getattr(e, "what", str(e)), target=self.plugin.name) from e
            return f"the flash kernel could not be generated ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
        except Exception as e:  # noqa: BLE001 - an unsupported case falls back, with the reason
            return f"the flash kernel could not be generated ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
        name = self.groups.func_name(node) + "_attention"
        self.plan.funcs[name] = func.with_attr("global_symbol", name)   # built into the plan's one library
        step = {"kind": "attention", "func": name, "config": dataclasses.asdict(cfg), "kernel": meta,
                "q": self.plan.arg(q), "k": self.plan.arg(k), "v": self.plan.arg(v),
                "mask": self.plan.arg(table.name, [1, cfg.q_heads, 1, cfg.t5_bias[1]], "float32") if kind == "table"
                else self._mask_arg(node, mask, q, k, kind) if kind != "none" else None,
                "out": self.plan.arg(out), "node": node.name, "op": "Attention"}
        self.plan.steps.append(step)
        return None

    def _te_fallback(self, node, q, k, v, mask, kv_lengths, out, dtype) -> None:
        spec = node.op.spec
        inputs = [q, k, v] + ([mask] if mask else []) + ([kv_lengths] if kv_lengths else [])

        def fn(*ts):
            qt, kt, vt = ts[:3]
            rest = list(ts[3:])
            mt = rest.pop(0) if mask else None
            lt = rest.pop(0) if kv_lengths else None
            return attention_compute(spec, qt, kt, vt, mt, lt, dtype, "out")

        self.emit(node, "attention_te", fn, inputs, out, schedule=lambda s: self.plugin.schedule("generic")(s, "out"))

    def _reference(self, node: Node, feats) -> None:
        spec = node.op.spec
        missing = [f.kind for f in feats if f.kind not in FEATURE_REFERENCES]
        if missing:
            raise LoweringError(node.name, "Attention", f"variant features {missing} have neither a CPU lowering "
                                   f"nor a registered reference (known: {sorted(FEATURE_REFERENCES)})")
        why = [d["reason"] for d in self.groups.graph.diagnostics
               if d.get("pass") == "decompose-variants" and d.get("node") == node.name]
        self.plan.notes.append(LoweringNote(
            node.name, FALLBACK, f"node '{node.name}' (Attention {spec.variant}): ran the numpy reference on the host "
            f"because variant features {[f.kind for f in feats]} have no TVM lowering yet"
            + (f" (decompose-variants: {why[-1]})" if why else ""), "numpy reference"))
        self.references[len(self.plan.steps)] = node
        self.plan.steps.append({"kind": "reference", "node": node.name, "op": "Attention",
                                "inputs": [v.name for v in node.inputs], "outputs": [v.name for v in node.outputs]})


def _alibi(spec) -> float | None:
    """The ALiBi max_bias the kernel computes in place of a bias tensor (decompose-variants kept it), or None."""
    mods = [m for m in spec.score_mods if m.kind == "alibi"]
    return float(mods[0].max_bias) if mods else None


def _t5(spec) -> tuple | None:
    """(bidirectional, num_buckets, max_distance) of a kept bucketed_bias the kernel computes, or None."""
    mods = [m for m in spec.score_mods if m.kind == "bucketed_bias"]
    return (bool(mods[0].bidirectional), int(mods[0].num_buckets), int(mods[0].max_distance)) if mods else None


def reference_callable(node: Node):
    """fn(list of arrays) -> outputs for a node run by the numpy reference."""
    spec = node.op.spec
    return lambda arrays: attention_reference(spec, dict(zip(spec.input_names(), arrays)))


@dataclasses.dataclass(frozen=True)
class _Perm:
    perm: tuple


@dataclasses.dataclass(frozen=True)
class _Axis:
    axis: int


def _reshape(x: te.Tensor, shape, name: str) -> te.Tensor:
    """x read under another shape of the same row-major elements (a folded Reshape view)."""
    src = list(x.shape)
    lead = len(src) - 1
    if len(shape) == len(src) + 1 and all(_same(a, b) for a, b in zip(src[:lead], shape[:lead])):
        # the usual heads split (B, S, H*D) -> (B, S, H, D): plain index arithmetic, no div/mod
        d = shape[-1]
        return te.compute(shape, lambda *i: x[tuple(i[:lead]) + (i[lead] * d + i[lead + 1],)], name=name)

    def f(*i):
        flat = 0
        for idx, d in zip(i, shape):
            flat = flat * d + idx
        out = []
        for d in reversed(src):
            out.append(flat % d)
            flat = flat // d
        return x[tuple(reversed(out))]

    return te.compute(shape, f, name=name)


def _same(a, b) -> bool:
    """Two extents known equal (equal static ints, or the same TIR variable / expression)."""
    from tvm import tirx

    ia, ib = static_int(a), static_int(b)
    if ia is not None or ib is not None:
        return ia == ib
    if a is b or (hasattr(a, "same_as") and a.same_as(b)):
        return True
    try:
        return bool(tirx.analysis.expr_deep_equal(a, b))
    except Exception:  # noqa: BLE001 - not comparable: take the general path
        return False


def _bhsd_view(x: te.Tensor) -> te.Tensor:
    """x (B, S, H, D) read as (B, H, S, D); an injective stage the kernel's schedule inlines."""
    return te.compute(_perm_shape(x.shape), lambda b, h, s, d: x[b, s, h, d], name="bhsd")


def _perm_shape(shape):
    s = list(shape)
    return (s[0], s[2], s[1], s[3])
