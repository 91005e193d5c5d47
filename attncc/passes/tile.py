"""tile: choose tile sizes per target by minimizing the cost model's predicted time.

For every Attention / FusedAttention op the search covers power-of-two query blocks (rows of
the GQA-packed query, 1 .. >= rows) and KV blocks (16 .. >= kv length) whose working set
(`attention_tile_footprint`) fits the target's tiled on-chip level (L2 per core on CPUs,
shared memory per SM on GPUs, the SLM frame on the optical system); it prices each with
`attention_cost` and keeps the fastest. A decode op with a split-KV plan (decode-split-kv) gets
its split count refitted to the target's parallel units. The choice is written to
`op.tiling` (target = the hardware name), so codegen and the cost report read the same numbers.

MatMul / Linear ops: on a target whose Capabilities declare a matmul register tile (cpu: tiles.matmul_cols,
vector_registers) the tile is that register tile, rows x cols from `cost_models.register_tile` (the tile the
cpu kernel builds; k_block = k: it walks the whole K per tile); elsewhere they are tiled the same way as
attention with `matmul_cost` (output tile m_block x n_block, K panel min(k, 256)). Their choice lives in
`graph.metadata["tiling"][node_name]` as {"m_block", "n_block", "k_block", "target", "predicted_s"}
(`matmul_tiling(graph, node)` turns it back into the `Tiling` that `matmul_cost` takes). Attention entries
are mirrored there with their predicted time too.

Options: target (a registered target, with options: cpu, cuda, cuda:arch=sm_80, mobile-cpu, mobile-gpu, optical
-- its Target record gives the device priced and the kernels' tile rules -- or a catalog device: h100, a100, ...);
q_block / kv_block / num_splits override the attention search (an override over the on-chip limit is
kept and reported in graph.diagnostics); dims binds symbolic dims for pricing ("S:512;past:4096"),
other symbols get default_dim.
Requires: fusion passes done (tiles belong to the final ops). Guarantees: every attention op has
tiling.q_block/kv_block/target; every searched tile fits the target's on-chip limit.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

from attncc.cost_models.attention_cost import attention_cost, attention_tile_footprint
from attncc.cost_models.hardware import HardwareSpec
from attncc.cost_models.matmul_cost import matmul_cost
from attncc.cost_models.register_tile import register_tile
from attncc.ir import dims as D
from attncc.ir.graph import Graph, Node
from attncc.ir.ops import Tiling
from attncc.ir.passes.base import Pass, register_pass

from attncc.cost_models.hardware import get_hardware

from .options import parse_dims, resolve_target

ATTENTION_OPS = ("Attention", "FusedAttention")
K_PANEL = 256  # the K extent matmul_cost assumes resident with an output tile


def _pow2_upto(limit: int, start: int = 1) -> list[int]:
    out, v = [], start
    while True:
        out.append(v)
        if v >= limit:
            return out
        v *= 2


def matmul_footprint(m_block: int, n_block: int, k: int, elem: int) -> int:
    """Bytes of an output tile plus its A and B panels."""
    kp = min(k, K_PANEL)
    return (m_block * kp + kp * n_block + m_block * n_block) * elem


def choose_attention_tiling(spec, batch: int, q_len: int, kv_len: int, dtype: str, hw: HardwareSpec,
                            q_block: int | None = None, kv_block: int | None = None, rules=None):
    """(Tiling, predicted OpCost) of the fastest fitting (q_block, kv_block); overrides pin a dimension.

    `rules` (the target's `TileRules`): only tiles its kernels accept are candidates."""
    rows = q_len * spec.group_size
    # powers of two plus the exact extents (the untiled plan is a candidate whenever it fits)
    # (a superset of the cost model's default search, so the choice is never predicted slower than it)
    qbs = [q_block] if q_block else sorted(set(_pow2_upto(min(max(2 * rows, 16), 4096))) | {rows})
    kbs = [kv_block] if kv_block else sorted(set(_pow2_upto(4096)) | {kv_len})
    best = None
    for qb in qbs:
        for kb in kbs:
            if rules is not None and not (q_block and kv_block) and not rules.accepts(qb, kb):
                continue
            t = Tiling(q_block=qb, kv_block=kb, target=hw.name)
            fits = attention_tile_footprint(spec, t, dtype) <= hw.on_chip_bytes
            if not fits and not (q_block and kv_block):
                continue
            cost = attention_cost(spec, batch, q_len, kv_len, dtype, t, hw)
            key = (cost.time_s, cost.main_bytes, -qb * kb)  # ties: less traffic, then bigger tiles
            if best is None or key < best[2]:
                best = (t, cost, key)
    if best is None:  # nothing fits (enormous head dims): the smallest tile, priced with its spill
        t = Tiling(q_block=rules.q_block_multiple if rules else 1,
                   kv_block=rules.kv_block_multiple if rules and rules.kv_block_multiple > 1 else 16, target=hw.name)
        best = (t, attention_cost(spec, batch, q_len, kv_len, dtype, t, hw), None)
    return best[0], best[1]


def choose_matmul_tiling(m: int, n: int, k: int, batch: int, dtype: str, hw: HardwareSpec,
                         m_block: int | None = None, n_block: int | None = None):
    """((m_block, n_block), predicted OpCost) of the fastest fitting output tile."""
    from attncc.ir.types import DTYPE_BYTES

    elem = DTYPE_BYTES[dtype]
    best = None
    for tm in ([m_block] if m_block else sorted(set(_pow2_upto(m)) | {m})):
        for tn in ([n_block] if n_block else sorted(set(_pow2_upto(n)) | {n})):
            if matmul_footprint(tm, tn, k, elem) > hw.on_chip_bytes and not (m_block and n_block):
                continue
            cost = matmul_cost(m, n, k, batch, dtype, hw, Tiling(q_block=tm, kv_block=tn))
            key = (cost.time_s, cost.main_bytes, -tm * tn)
            if best is None or key < best[2]:
                best = ((tm, tn), cost, key)
    if best is None:
        best = ((1, 1), matmul_cost(m, n, k, batch, dtype, hw, Tiling(q_block=1, kv_block=1)), None)
    return best[0], best[1]


def matmul_tiling(graph: Graph, node: Node) -> Tiling | None:
    """The Tiling `matmul_cost` takes for a MatMul/Linear the tile pass annotated (None if untiled)."""
    rec = graph.metadata.get("tiling", {}).get(node.name)
    if not rec or "m_block" not in rec:
        return None
    return Tiling(q_block=rec["m_block"], kv_block=rec["n_block"], target=rec.get("target"))


def _eval(d, env: dict[str, int], default: int) -> int:
    return D.evaluate(d, {s: env.get(s, default) for s in D.symbols(d)})


@register_pass
@dataclass(frozen=True)
class Tile(Pass):
    """Pick attention and matmul tiles for `target` by the cost model, within on-chip memory."""

    name: ClassVar[str] = "tile"
    target: str = "cpu"
    q_block: int | None = None
    kv_block: int | None = None
    num_splits: int | None = None
    dims: str = ""
    default_dim: int = 1024

    def run(self, graph: Graph) -> Graph:
        target = resolve_target(self.name, self.target)   # the Target record: device, tile rules
        hw = get_hardware(target.device)
        rules = target.capabilities.tiles if target.capabilities is not None else None
        env = parse_dims(self.name, self.dims)
        record = graph.metadata.setdefault("tiling", {})
        for node in graph.topological():
            if node.op.op_name in ATTENTION_OPS:
                self._tile_attention(graph, node, hw, rules, env, record)
            elif node.op.op_name in ("MatMul", "Linear"):
                self._tile_matmul(node, hw, env, record, target.capabilities)
        return graph

    def _tile_attention(self, graph: Graph, node: Node, hw: HardwareSpec, rules, env, record) -> None:
        spec = node.op.spec
        named = dict(zip(spec.input_names(), node.inputs))
        seq_ax = 2 if spec.layout == "bhsd" else 1
        q, k = named["query"], named["key"]
        batch, q_len = _eval(q.shape[0], env, self.default_dim), _eval(q.shape[seq_ax], env, self.default_dim)
        kv_len = _eval(k.shape[seq_ax], env, self.default_dim)
        if spec.kv_cache:
            kv_len += _eval(named["past_key"].shape[seq_ax], env, self.default_dim)
        tiling, cost = choose_attention_tiling(spec, batch, q_len, kv_len, q.dtype, hw, self.q_block, self.kv_block,
                                               rules)
        if attention_tile_footprint(spec, tiling, q.dtype) > hw.on_chip_bytes:
            graph.diagnostics.append({"pass": "tile", "node": node.name, "reason":
                                      f"tile {tiling.q_block}x{tiling.kv_block} exceeds {hw.tile_level} "
                                      f"({hw.on_chip_bytes} B) on {hw.name}"})
        splits = self.num_splits or (node.op.tiling.num_splits if node.op.tiling else None)
        if splits and not self.num_splits:  # refit the decode plan to this target's parallel units
            units = hw.level(hw.tile_level).units
            splits = max(1, min(math.ceil(units / max(1, batch * spec.num_kv_heads)),
                                max(1, kv_len // tiling.kv_block)))
        old = node.op.tiling or Tiling()
        tiling = dataclasses.replace(old, q_block=tiling.q_block, kv_block=tiling.kv_block, num_splits=splits,
                                     target=hw.name)
        node.op = dataclasses.replace(node.op, tiling=tiling)  # attributes only: types unchanged
        record[node.name] = {**tiling.to_dict(), "predicted_s": cost.time_s}

    def _tile_matmul(self, node: Node, hw: HardwareSpec, env, record, caps=None) -> None:
        a, b = node.inputs[0], node.inputs[1]
        if node.op.op_name == "Linear":
            batch, m = 1, math.prod(_eval(d, env, self.default_dim) for d in a.shape[:-1])
        else:
            batch = math.prod(_eval(d, env, self.default_dim) for d in node.outputs[0].shape[:-2])
            m = _eval(a.shape[-2], env, self.default_dim)
        k, n = _eval(b.shape[-2], env, self.default_dim), _eval(b.shape[-1], env, self.default_dim)
        if 0 in (batch, m, n, k):
            return  # a zero-size matmul (e.g. an empty rotary pass-through): nothing to tile
        if caps is not None and caps.tiles.matmul_cols and caps.vector_registers:
            rows_dims = a.shape[:-1] if node.op.op_name == "Linear" else a.shape[-2:-1]
            static = all(isinstance(d, int) for d in rows_dims)   # a symbolic M builds the tallest tile, padded
            tm, tn = register_tile(m if static else None, n, caps)
            cost = matmul_cost(m, n, k, batch, a.dtype, hw, Tiling(q_block=tm, kv_block=tn, target=hw.name))
            record[node.name] = {"m_block": tm, "n_block": tn, "k_block": k, "register_tile": True,
                                 "target": hw.name, "predicted_s": cost.time_s}
            return
        (tm, tn), cost = choose_matmul_tiling(m, n, k, batch, a.dtype, hw)
        record[node.name] = {"m_block": tm, "n_block": tn, "k_block": min(k, K_PANEL), "target": hw.name,
                             "predicted_s": cost.time_s}
