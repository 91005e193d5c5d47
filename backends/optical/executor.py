"""Runs an IR graph on the simulated 4f machine: linear ops through the optical path, the rest on the host.

Placement (docs/optical.md): Linear / MatMul -> optical matrix products (constant weights: static filters;
computed second operands: one data-dependent filter per batch element); Attention (plain or ConvShareViT's
conv_share) -> shared-kernel q/k/v convolutions as 4f correlations, QKᵀ and PV as data-dependent optical
matmuls, scale/masks/softmax on the host; Convolution -> 4f correlations; everything else (softmax, norms,
activations, layout) on the electronic host, whose kernels are the IR interpreter's numpy kernels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...cost_models import optical4f
from ...ir import Graph
from ...ir.interpreter import KERNELS, Context, bind_dims
from ...ir.interpreter.attention_ref import apply_rope, attention_reference, position_keep_mask
from . import mapping
from .conv import convolution
from ..core.notes import FALLBACK, LoweringNote
from .config import OpticalConfig
from .physics import Counters, Simulator

_OPTICAL_FEATURES = (None, "conv_share")


@dataclass
class ProgramRow:
    """One node of the optical program: where it ran and what it cost the simulated machine (last run)."""

    node: str
    op: str
    where: str                          # "optical" | "host" | "optical+host"
    work: Counters = field(default_factory=Counters)
    host_work: str = ""
    host_bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        w = self.work
        return {"node": self.node, "op": self.op, "where": self.where, "frames": w.frames,
                "filter_refreshes": w.filter_loads, "dynamic_refreshes": w.dynamic_loads,
                "bytes_to_slm": w.in_bytes, "bytes_from_camera": w.out_bytes, "bytes_to_filter": w.filter_bytes,
                "optical_macs": w.optical_macs, "host_flops": w.host_flops, "host_work": self.host_work,
                "host_bytes": self.host_bytes, "notes": list(w.notes)}


@dataclass
class OpticalProgram:
    """Per-node placement and work of the compiled graph; `rows` are refreshed by every run."""

    rows: list[ProgramRow]
    config: OpticalConfig

    def totals(self) -> dict[str, float]:
        keys = ("frames", "filter_refreshes", "dynamic_refreshes", "bytes_to_slm", "bytes_from_camera",
                "bytes_to_filter", "optical_macs", "host_flops", "host_bytes")
        rows = [r.as_dict() for r in self.rows]
        return {k: sum(r[k] for r in rows) for k in keys}

    def table(self) -> str:
        """The program as text (simulation counts of the last run)."""
        head = f"{'node':28} {'op':16} {'where':13} {'frames':>8} {'refresh':>8} {'dyn':>6} {'to SLM B':>11} " \
               f"{'camera B':>11} {'host work':>24}"
        lines = ["optical program (simulated 4f machine; counts of the last run)", head]
        for r in self.rows:
            d = r.as_dict()
            host = r.host_work or (f"{d['host_flops']:.3g} flop" if d["host_flops"] else "")
            lines.append(f"{r.node[:28]:28} {r.op[:16]:16} {r.where:13} {d['frames']:8d} {d['filter_refreshes']:8d} "
                         f"{d['dynamic_refreshes']:6d} {d['bytes_to_slm']:11d} {d['bytes_from_camera']:11d} {host[:24]:>24}")
        t = self.totals()
        lines.append(f"{'total':28} {'':16} {'':13} {int(t['frames']):8d} {int(t['filter_refreshes']):8d} "
                     f"{int(t['dynamic_refreshes']):6d} {int(t['bytes_to_slm']):11d} {int(t['bytes_from_camera']):11d}")
        return "\n".join(lines)


def placement(node, cfg: OpticalConfig) -> tuple[str, str | None]:
    """(where `node` runs, a note when a node that could run in light runs on the host instead)."""
    kind = node.op.op_name
    if node.outputs and not node.outputs[0].type.is_float:
        return "host", None   # integer products are index math, not light
    if kind in ("Linear", "MatMul", "Convolution"):
        return "optical", None
    if kind in ("Attention", "FusedAttention"):
        spec = node.op.spec
        feats = [f.kind for f in spec.features_list()]
        if any(k not in _OPTICAL_FEATURES for k in feats):
            return "host", LoweringNote(node.name, FALLBACK, f"node '{node.name}': attention feature(s) {feats} are not "
                                        "mapped to the 4f system; it ran as the numpy reference on the host (fallback)",
                                        "numpy reference")
        return ("optical+host", None) if cfg.attention == "optical" or feats else ("host", None)
    return "host", None


class OpticalExecutor:
    """Callable over numpy inputs: executes `graph` with the simulator of `cfg` (device `dev` picks tiles)."""

    def __init__(self, graph: Graph, cfg: OpticalConfig, dev: optical4f.Optical4fDevice,
                 notes: list[str] | None = None):
        self.graph, self.cfg, self.dev = graph, cfg, dev
        self.notes = notes if notes is not None else []   # the Executable's notes: run-time fallbacks land here
        self.sim = Simulator(cfg)
        self.program = OpticalProgram([ProgramRow(n.name, n.op.op_name, placement(n, cfg)[0])
                                       for n in graph.topological() if n.op.op_name != "Constant"], cfg)

    # ---- products -----------------------------------------------------------------------------------------
    def matmul(self, x: np.ndarray, w: np.ndarray, stats: Counters, dynamic: bool) -> np.ndarray:
        """x (m x k) @ w (k x n) with the cost model's filter tile for this shape."""
        (m, k), n = x.shape, w.shape[1]
        tile = self.cfg.matmul_n_tile
        work = optical4f.matmul(self.dev, m, k, n, dynamic=dynamic,
                                n_tile=None if tile is None else min(tile, n, self.cfg.aperture[0]))
        return mapping.matmul(self.sim, x, w, work.tile, stats, dynamic)

    def batched_matmul(self, a: np.ndarray, b: np.ndarray, stats: Counters, dynamic: bool) -> np.ndarray:
        """numpy-broadcast a @ b, one optical product (and filter set) per batch element of b."""
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:]).reshape(-1, *a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:]).reshape(-1, *b.shape[-2:])
        out = np.stack([self.matmul(a[i], b[i], stats, dynamic) for i in range(a.shape[0])])
        return out.reshape(batch + out.shape[-2:])

    # ---- ops ----------------------------------------------------------------------------------------------
    def linear(self, node, args, stats: Counters) -> list[np.ndarray]:
        x, w = (np.asarray(a, np.float64) for a in args[:2])
        static = _is_constant(node.inputs[1])
        y = self.matmul(x.reshape(-1, x.shape[-1]), w, stats, dynamic=not static).reshape(*x.shape[:-1], w.shape[1])
        if node.op.op_name == "Linear" and node.op.has_bias:
            y = y + np.asarray(args[2], np.float64)
            stats.host_flops += y.size
        return [y]

    def matmul_op(self, node, args, stats: Counters) -> list[np.ndarray]:
        a, b = (np.asarray(t, np.float64) for t in args)
        if b.ndim == 2:  # one weight for every row: fold the leading dims
            return self.linear(node, args, stats)
        stats.notes.append("second operand per batch element: a data-dependent filter set each")
        return [self.batched_matmul(a, b, stats, dynamic=True)]

    def attention(self, spec, named: dict[str, np.ndarray], stats: Counters) -> list[np.ndarray]:
        """Attention with ConvShareViT's shared convs and QKᵀ/PV in light (or on the host), softmax on the host."""
        f = {k: np.asarray(v, np.float64) if np.asarray(v).dtype.kind == "f" else np.asarray(v) for k, v in named.items()}
        q, k, v = f["query"], f["key"], f["value"]
        feat = spec.kv_source
        if spec.layout == "bshd":
            q, k, v = (t.transpose(0, 2, 1, 3) for t in (q, k, v))
        if feat is not None and feat.kind == "conv_share":
            q, k, v = (self.shared_conv(t, f[f"conv_{n}"], feat.image_size, stats) for t, n in ((q, "q"), (k, "k"), (v, "v")))
            stats.notes.append("conv_share: q/k/v depthwise shared-kernel convs as 4f correlations (one filter each)")
        if spec.rope is not None:
            q = apply_rope(q, f["rope_cos"], f["rope_sin"], spec.rope.style, spec.rope.rotary_dim)
            k = apply_rope(k, f["rope_cos"], f["rope_sin"], spec.rope.style, spec.rope.rotary_dim)
        presents = []
        if spec.kv_cache:
            pk, pv = f["past_key"], f["past_value"]
            if spec.layout == "bshd":
                pk, pv = pk.transpose(0, 2, 1, 3), pv.transpose(0, 2, 1, 3)
            k, v = np.concatenate([pk, k], 2), np.concatenate([pv, v], 2)
            presents = [k, v]
        optical = self.cfg.attention == "optical"
        B, H, Sq, _ = q.shape
        hkv = k.shape[1]
        g = H // hkv
        qg = q.reshape(B, hkv, g * Sq, q.shape[-1])  # the g query heads of a kv head share its K filter
        if optical:
            scores = self.batched_matmul(qg, k.swapaxes(-1, -2), stats, dynamic=True)
            stats.notes.append("QKᵀ and PV in light: K and V are data-dependent filters (a refresh + host FFT each)")
        else:
            scores = qg @ k.swapaxes(-1, -2)
            stats.host_flops += 2 * scores.size * q.shape[-1]
        p = _softmax_host(spec, scores.reshape(B, H, Sq, -1), f, Sq, k.shape[2])
        stats.host_flops += 5 * p.size
        pg = p.reshape(B, hkv, g * Sq, -1)
        if optical:
            out = self.batched_matmul(pg, v, stats, dynamic=True)
        else:
            out = pg @ v
            stats.host_flops += 2 * out.size * v.shape[2]
        out = out.reshape(B, H, Sq, -1)
        if spec.layout == "bshd":
            out = out.transpose(0, 2, 1, 3)
            presents = [t.transpose(0, 2, 1, 3) for t in presents]
        return [out] + presents

    def shared_conv(self, x: np.ndarray, kernel: np.ndarray, image_size, stats: Counters) -> np.ndarray:
        """(B, H, h·w, D) channel maps, one shared (kh, kw) kernel, valid: every map is a plane of one filter."""
        B, H, _, D = x.shape
        h, w = image_size
        planes = x.reshape(B, H, h, w, D).transpose(0, 1, 4, 2, 3).reshape(B * H * D, h, w)
        out = mapping.correlate_planes(self.sim, planes, kernel, stats)
        oh, ow = out.shape[1:]
        return out.reshape(B, H, D, oh, ow).transpose(0, 1, 3, 4, 2).reshape(B, H, oh * ow, D)

    def fused_attention(self, node, args, stats: Counters) -> list[np.ndarray]:
        op = node.op
        named = dict(zip(op.input_names(), args))
        outs = self.attention(op.spec, {k: named[k] for k in op.spec.input_names()}, stats)
        o = outs[0] if op.spec.layout == "bshd" else outs[0].transpose(0, 2, 1, 3)
        o = o.reshape(o.shape[0], o.shape[1], -1)
        w = np.asarray(named["out_weight"], np.float64)
        y = self.matmul(o.reshape(-1, o.shape[-1]), w, stats, dynamic=False).reshape(*o.shape[:2], w.shape[1])
        for extra in ("out_bias", "residual"):
            if extra in named:
                y = y + np.asarray(named[extra], np.float64)
                stats.host_flops += y.size
        return [y] + outs[1:]

    # ---- the graph ----------------------------------------------------------------------------------------
    def __call__(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        g = self.graph
        arrays = [np.asarray(a) for a in inputs]
        ctx = Context(g.constants, bind_dims(g, arrays))
        env = {id(v): a for v, a in zip(g.inputs, arrays)}
        rows = iter(self.program.rows)
        for node in g.topological():
            args = [None if v is None else env[id(v)] for v in node.inputs]
            if node.op.op_name == "Constant":
                outs = KERNELS["Constant"](node.op, args, node, ctx)
            else:
                row = next(rows)
                row.work = Counters()
                outs = self._run(node, row, args, ctx)
            for v, a in zip(node.outputs, outs):
                env[id(v)] = np.asarray(a)
        return [env[id(v)] for v in g.outputs]

    def _run(self, node, row: ProgramRow, args, ctx) -> list[np.ndarray]:
        kind = node.op.op_name
        if row.where != "host":
            try:
                return self._optical(node, row, args)
            except ValueError as e:  # an operand the aperture cannot hold (e.g. a kernel larger than it)
                note = LoweringNote(node.name, FALLBACK, f"node '{node.name}' ({kind}) ran on the host as a fallback: {e}",
                                    "host fallback")
                if note not in self.notes:
                    self.notes.append(note)
                row.where, row.work = "host", Counters()
        if kind == "Attention" and node.op.spec.features_list():
            outs = attention_reference(node.op.spec, dict(zip(node.op.spec.input_names(), args)))
        else:
            outs = KERNELS[kind](node.op, args, node, ctx)
        row.host_work = f"numpy {kind}"
        row.host_bytes = sum(np.asarray(a).nbytes for a in args if a is not None) + sum(np.asarray(o).nbytes for o in outs)
        return outs

    def _optical(self, node, row: ProgramRow, args) -> list[np.ndarray]:
        kind = node.op.op_name
        if kind == "Linear":
            outs = self.linear(node, args, row.work)
        elif kind == "MatMul":
            outs = self.matmul_op(node, args, row.work)
        elif kind == "Attention":
            outs = self.attention(node.op.spec, dict(zip(node.op.spec.input_names(), args)), row.work)
        elif kind == "FusedAttention":
            outs = self.fused_attention(node, args, row.work)
        else:
            outs = convolution(self, node, args, row.work)
        dtypes = [np.asarray(a).dtype for a in args if a is not None and np.asarray(a).dtype.kind == "f"]
        return [o.astype(dtypes[0]) if dtypes else o for o in outs]


def _is_constant(v) -> bool:
    return v is not None and v.producer is not None and v.producer.op.op_name == "Constant"


def _softmax_host(spec, scores: np.ndarray, f: dict, q_len: int, kv_len: int) -> np.ndarray:
    """scale, softcap, masks and softmax of optical scores on the host (the order of attention_ref.core_attention)."""
    s = spec.scale * scores
    if spec.softcap and spec.softcap_order == "before_mask":
        s = spec.softcap * np.tanh(s / spec.softcap)
    keep, bias = position_keep_mask(spec.mask, q_len, kv_len), None
    if spec.mask.input == "bool":
        m = f["mask"].astype(bool)
        keep = m if keep is None else keep & m
    elif spec.mask.input == "additive":
        bias = f["mask"]
    if spec.mask.kv_lengths:
        valid = (np.arange(kv_len)[None, :] < f["kv_lengths"].astype(np.int64)[:, None])[:, None, None, :]
        keep = valid if keep is None else keep & valid
    if bias is not None:
        s = s + bias
    if spec.softcap and spec.softcap_order == "after_mask":
        s = spec.softcap * np.tanh(s / spec.softcap)
    if keep is not None:
        s = np.where(keep, s, -np.inf)
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(m), m, 0.0))
    d = e.sum(-1, keepdims=True)
    return np.divide(e, d, out=np.zeros_like(e), where=d > 0)


__all__ = ["OpticalExecutor", "OpticalProgram", "ProgramRow", "placement"]
