"""IR ops on the 4f optical system: which op runs in light, which on the host, and at what price.

`analyze_graph` calls `price_optical_node` for every op when `hw.kind == "optical"`; the generic counters still
fill FLOPs and bytes (so reports compare devices on the same counts) and this module replaces the time with the
4f model of `optical4f.py` and adds `energy_j`.
  Linear / MatMul with a Constant weight   static filters (weight-stationary over all rows)
  MatMul with a computed second operand     dynamic filters: one filter set per batch element, host FFT each
  Attention                                 QK^T and PV as dynamic-filter matmuls per (batch, kv head), softmax
                                            on the host; ConvShareViT's shared q/k/v convs (conv_share) are static
                                            correlations of all channel maps with one kernel each
  FusedAttention                            + its output projection as a static Linear
  Convolution                               static correlations: one filter per distinct (out, in) kernel serving
                                            every batch plane (ConvShareViT's shared depthwise kernels load once);
                                            stride computed in full, subsampled on the host (backends/optical/conv.py)
  everything else                           host: max(FLOPs / R_host, bytes / B_host)
Sign: a Constant's values decide whether it needs the signed-weight policy; computed operands are signed unless
produced by a non-negative op (Softmax, exp, sigmoid, relu).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .hardware import HardwareSpec
from .optical4f import Optical4fDevice, OpticalWork, correlate, host, matmul, price_work
from .pricing import OpCost

SIMULATION_NOTE = ("optical-4f figures are a simulation estimate from datasheet and literature figures "
                   "(cost_models/optical4f.py, specs/optical-4f.json), not a measurement")
_NON_NEGATIVE = {("Unary", "exp"), ("Unary", "sigmoid"), ("Activation", "relu"),
                 ("Activation", "sigmoid")}


def device_for(hw: HardwareSpec, ctx: dict) -> Optical4fDevice:
    """The 4f device of `hw`, built once per analysis."""
    if "optical_device" not in ctx:
        ctx["optical_device"] = Optical4fDevice.from_spec(hw)
    return ctx["optical_device"]


def _signed(v, graph) -> bool:
    """Whether value `v` may hold negative numbers (constants are inspected; unknown means signed)."""
    if v is None or v.producer is None:
        return True
    op = v.producer.op
    if op.op_name == "Constant":
        arr = getattr(graph, "constants", {}).get(op.key) if graph is not None else None
        return True if arr is None else bool(np.asarray(arr).size and np.min(np.asarray(arr)) < 0)
    if op.op_name == "Softmax":
        return False
    return (op.op_name, getattr(op, "fn", None) or getattr(op, "kind", None)) not in _NON_NEGATIVE


def _is_constant(v) -> bool:
    return v is not None and v.producer is not None and v.producer.op.op_name == "Constant"


def _matmul_work(node, bind, dev, graph) -> OpticalWork:
    a, b = node.inputs[0], node.inputs[1]
    sa, sb = bind.shape(a, node.name), bind.shape(b, node.name)
    k, n = sa[-1], sb[-1]
    static = _is_constant(b) and len(sb) == 2
    if node.op.op_name == "Linear" or len(sb) == 2:  # one weight shared by every row
        m = math.prod(sa[:-1])
        work = matmul(dev, m, k, n, 1, dynamic=not static, signed_weights=_signed(b, graph), signed_inputs=_signed(a, graph))
    else:
        out = bind.shape(node.outputs[0], node.name)
        batch = math.prod(out[:-2])
        work = matmul(dev, sa[-2], k, n, batch, dynamic=not _is_constant(b), signed_weights=_signed(b, graph),
                      signed_inputs=_signed(a, graph))
    if node.op.op_name == "Linear" and getattr(node.op, "has_bias", False):
        work.host_flops += work.optical_macs / k  # one add per output
    if not static:
        work.notes.append("weights are data-dependent: a filter refresh and a host FFT per filter.")
    return work


def _attention_work(node, bind, dev, graph, counted: OpCost) -> OpticalWork:
    spec = node.op.spec
    eff = counted.details["effective"]
    named = dict(zip(spec.input_names(), node.inputs))
    batch = bind.shape(named["query"], node.name)[0]
    hkv, g = eff["kv_heads"], max(1, spec.num_heads // eff["kv_heads"])
    lq, lk, dqk, dv = eff["q_len"], eff["kv_len"], eff["qk_dim"], eff["v_dim"]
    work = OpticalWork()
    feat = spec.kv_source
    if feat is not None and feat.kind == "conv_share":  # static shared kernels: one filter per q/k/v conv
        for name, conv in (("query", "conv_q"), ("key", "conv_k"), ("value", "conv_v")):
            shape = bind.shape(named[name], node.name)
            planes = batch * shape[1 if spec.layout == "bhsd" else 2] * shape[-1]  # one (h, w) map per channel
            work = work + correlate(dev, planes, tuple(feat.image_size), tuple(feat.kernel_size), 1, "valid",
                                    signed_weights=_signed(named[conv], graph), signed_inputs=_signed(named[name], graph))
        work.notes.append("conv_share: q/k/v convs use one static shared kernel each (all channel maps tiled per frame).")
    qk = matmul(dev, lq * g, dqk, lk, batch * hkv, dynamic=True, signed_weights=True, signed_inputs=True)
    pv = matmul(dev, lq * g, lk, dv, batch * hkv, dynamic=True, signed_weights=True, signed_inputs=False)
    scores = batch * spec.num_heads * lq * lk
    soft = host(counted.vector_flops, 4.0 * scores * 2)  # read the camera scores, write P for the SLM
    work = work + qk + soft + pv
    work.notes.append("QK^T and PV have data-dependent filters (K, V): one filter refresh + host FFT per (batch, kv head) tile.")
    extra = counted.flops - counted.details.get("core_flops", counted.flops)
    if feat is not None and feat.kind != "conv_share" and extra > 0:  # variant projections: one MAC per aperture pixel
        frames = math.ceil(extra / 2 / (dev.aperture[0] * dev.aperture[1]))
        work = work + OpticalWork(frames=frames, filter_updates=1, optical_macs=extra / 2)
        work.notes.append(f"{feat.kind}: extra projections priced at one MAC per aperture pixel per frame.")
    pairs = counted.details.get("pairs")
    if pairs and pairs < batch * spec.num_heads * lq * lk:
        work.notes.append("masked or skipped score pairs are still computed in light (whole filter tiles).")
    epilogue = getattr(node.op, "epilogue_names", None)
    if epilogue is not None:
        w = dict(zip(node.op.input_names(), node.inputs))["out_weight"]
        kin, nout = bind.shape(w, node.name)
        work = work + matmul(dev, batch * lq, kin, nout, 1, signed_weights=_signed(w, graph), signed_inputs=True)
    return work


def _conv_work(node, bind, dev, graph) -> OpticalWork:
    """Convolution: the padded input planes correlated with each distinct (dilated) kernel."""
    op = node.op
    x, w = bind.shape(node.inputs[0], node.name), bind.shape(node.inputs[1], node.name)
    pads = [a + b for a, b in op.padding]
    image = tuple(s + p for s, p in zip(x[2:], pads))
    kernel = tuple(d * (k - 1) + 1 for d, k in zip(op.dilation, w[2:]))
    if len(image) == 1:
        image, kernel = (1,) + image, (1,) + kernel
    arr = getattr(graph, "constants", {}).get(node.inputs[1].producer.op.key) if _is_constant(node.inputs[1]) else None
    sx = _signed(node.inputs[0], graph)
    if arr is None:  # computed weights: every (out, in) pair its own data-dependent filter
        work = correlate(dev, x[0], image, kernel, w[0] * w[1], "valid", True, sx, dynamic=True)
    else:  # one filter per distinct kernel, serving all the planes that use it
        a = np.asarray(arr).reshape(w[0] * w[1], -1)
        kernels, counts = np.unique(a, axis=0, return_counts=True)
        work = OpticalWork()
        for k, c in zip(kernels, counts):
            work = work + correlate(dev, x[0] * int(c), image, kernel, 1, "valid", bool(np.min(k) < 0), sx)
    if any(s > 1 for s in op.stride):
        work.notes.append(f"stride {op.stride}: every shift is computed in light and subsampled on the host.")
    return work


def optical_work(node, bind, hw: HardwareSpec, ctx: dict, counted: OpCost) -> OpticalWork:
    """What `node` asks of the 4f system and the host."""
    dev, graph = device_for(hw, ctx), ctx.get("graph")
    kind = node.op.op_name
    if kind in ("Linear", "MatMul"):
        return _matmul_work(node, bind, dev, graph)
    if kind in ("Attention", "FusedAttention"):
        return _attention_work(node, bind, dev, graph, counted)
    if kind == "Convolution":
        try:
            return _conv_work(node, bind, dev, graph)
        except ValueError as e:  # a kernel larger than the aperture: the backend runs it on the host too
            work = host(counted.flops + counted.vector_flops, counted.main_bytes)
            work.notes.append(f"on the host: {e}")
            return work
    return host(counted.flops + counted.vector_flops, counted.main_bytes)


def price_optical_node(node, bind, hw: HardwareSpec, ctx: dict, counted: OpCost) -> OpCost:
    """Replace the roofline time of `counted` (same FLOP/byte counts) with the 4f model's time and energy."""
    dev = device_for(hw, ctx)
    work = optical_work(node, bind, hw, ctx, counted)
    priced: dict[str, Any] = price_work(dev, work)
    parts = priced["time_parts_s"]
    counted.compute_s = parts["frames"] + parts["filter_refresh"] + parts["host_fft"]
    counted.memory_s = parts["host"]
    counted.launch_s = 0.0
    counted.time_s = priced["time_s"]
    counted.energy_j = priced["energy_j"]
    counted.bound = priced["bound"]
    counted.executed_flops = None
    counted.details["optical"] = {
        "frames": work.frames, "filter_updates": work.filter_updates, "dynamic_filter_updates": work.dynamic_updates,
        "optical_macs": work.optical_macs, "host_flops": work.host_flops, "host_bytes": work.host_bytes,
        "link_bytes": {"to_slm": work.in_bytes, "from_camera": work.out_bytes, "to_filter": work.filter_bytes},
        "filter": dev.filter_name, "aperture": dev.aperture, "operand_bits": dev.operand_bits, **priced}
    counted.notes.extend(n for n in work.notes if n not in counted.notes)
    return counted
