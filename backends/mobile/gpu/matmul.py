"""mobile-gpu matmuls: weights kept (K, N) row-major, C tiles computed by a 2-D work-group whose A and B
tiles are staged in local memory, each work-item accumulating a small register tile in private memory.

Tile sizes come from the device limits (spec.py): work-items per group <= max work-group size, the two
staged tiles <= local memory; a tile that cannot fit is a compile-time error naming the op and the limit.
"""
from __future__ import annotations

from tvm import s_tir, te, tirx

from ...core.errors import LoweringError
from ...core.matmul import PlainMatmul
from ...core.symbolic import static_int
from .schedules import _inline_spatial
from .spec import OpenClLimits, opencl_limits


class TileDoesNotFit(LoweringError):
    """A kernel tile exceeds the device's work-group or local-memory limit.

    `fatal`: the core re-raises it under the IR node's name instead of falling back to another kernel (a
    requested tile the device cannot hold is the user's to change, not to hide)."""

    fatal = True

    def __init__(self, node: str, op: str, what: str, cause: BaseException | None = None):
        super().__init__(node, op, what, cause, target="mobile-gpu")
        self.what = what


def _is_one(x) -> bool:
    return static_int(x) == 1


def matmul_compute(a: te.Tensor, b: te.Tensor, n, packed: bool, name: str) -> te.Tensor:
    """fp32 C (Bt, M, N) = A (Ba, M, K) @ B, B either a shared (K, N) weight or (Bb, K, N), Bb in {1, Bt}."""
    ba, m, k_len = a.shape
    if packed:
        bt = ba
    else:
        bb = b.shape[0]
        bt = bb if _is_one(ba) else ba
    k = te.reduce_axis((0, k_len), "k")

    def f32(v):
        return v if v.dtype == "float32" else v.astype("float32")

    def b_at(bi, ki, ni):
        return f32(b[ki, ni] if packed else b[0 if _is_one(b.shape[0]) else bi, ki, ni])

    return te.compute((bt, m, n), lambda bi, mi, ni: te.sum(f32(a[0 if _is_one(ba) else bi, mi, k]) * b_at(bi, k, ni),
                                                            axis=k), name=name)


def tiles_for(m: int, n: int, limits: OpenClLimits, k: int | None = None) -> tuple[int, int, int, int, int]:
    """(threads in m, threads in n, rows per item, cols per item, k step) for an (m, n) output over `k`."""
    tm = 8 if m >= 8 else 1
    rm = 4 if m >= 32 else 1
    tn = min(16 if m >= 8 else 64, limits.max_work_group_size // tm)
    rn = 4 if n >= tn * 4 else 1
    tk = 16
    if k is not None and -(-k // tk) == 2:
        # never a two-trip k loop: PoCL (3.0 and 3.1, the CPU OpenCL device tests run on) mis-runs a loop of
        # exactly two trips around work-group barriers (outputs never written; measured: K=32 with 16-deep
        # tiles wrong, K=32 in one 32-deep tile or four 8-deep tiles, K=48/64/96 right). One tile, else 8-deep.
        tk = k if 4 * k * (tm * rm + tn * rn) <= limits.local_mem_bytes else 8
    return tm, tn, rm, rn, tk


def check_fit(node: str, tm: int, tn: int, rm: int, rn: int, tk: int, limits: OpenClLimits) -> None:
    """Raise TileDoesNotFit when the tile breaks the work-group or local-memory limit."""
    items = tm * tn
    if items > limits.max_work_group_size:
        raise TileDoesNotFit(node, "MatMul", f"tile of {tm}x{tn} work-items exceeds the max work-group size "
                             f"{limits.max_work_group_size} (cost_models/specs/mobile-gpu.json opencl.portable)")
    local = 4 * tk * (tm * rm + tn * rn)
    if local > limits.local_mem_bytes:
        raise TileDoesNotFit(node, "MatMul", f"A/B tiles take {local} B of local memory, over the "
                             f"{limits.local_mem_bytes} B limit (cost_models/specs/mobile-gpu.json opencl.portable)")


def _fetch(sch: s_tir.Schedule, block, operand: int, at, tm: int, tn: int) -> None:
    """Stage operand `operand` of `block` in local memory at loop `at`, loaded by the whole work-group."""
    cache = sch.cache_read(block, operand, "shared")
    sch.compute_at(cache, at)
    loops = list(sch.get_loops(cache))
    depth = [i for i, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(at))][0] + 1
    fused = sch.fuse(*loops[depth:]) if len(loops) - depth > 1 else loops[depth]
    _, ty, tx = sch.split(fused, [None, tm, tn])
    sch.bind(ty, "threadIdx.y")
    sch.bind(tx, "threadIdx.x")


def schedule_matmul(sch: s_tir.Schedule, root: str, acc: str, limits: OpenClLimits | None = None) -> None:
    """Tile `acc` (Bt, M, N, K) over work-groups of (tm x tn) items with (rm x rn) private tiles; the
    epilogue (`root`) writes each item's tile."""
    limits = limits or opencl_limits()
    _inline_spatial(sch, root)
    blk = sch.get_sblock(acc)
    bl, ml, nl, kl = sch.get_loops(blk)
    m, n = static_int(sch.get(ml).extent), static_int(sch.get(nl).extent)
    if m is None or n is None:
        raise ValueError("mobile-gpu matmuls need static row/column counts (builds are per shape)")
    tm, tn, rm, rn, tk = tiles_for(m, n, limits, static_int(sch.get(kl).extent))
    check_fit(root, tm, tn, rm, rn, tk, limits)
    mo, mt, mr = sch.split(ml, [None, tm, rm])
    no, nt, nr = sch.split(nl, [None, tn, rn])
    ko, ki = sch.split(kl, [None, tk])
    sch.reorder(bl, mo, no, mt, nt, ko, ki, mr, nr)
    sch.bind(sch.fuse(bl, mo), "blockIdx.y")
    sch.bind(no, "blockIdx.x")
    sch.bind(mt, "threadIdx.y")
    sch.bind(nt, "threadIdx.x")
    sch.reverse_compute_at(sch.get_sblock(root), nt, preserve_unit_loops=True)
    _fetch(sch, blk, 0, ko, tm, tn)
    _fetch(sch, blk, 1, ko, tm, tn)
    sch.set_scope(blk, 0, "local")
    sch.decompose_reduction(blk, ko)


class GpuMatmul(PlainMatmul):
    """MatmulStrategy of mobile-gpu: the core's plain (K, N) weights (no repacking, no gated panels), a compute
    that also broadcasts a batch-1 left operand, and the local-memory tiled schedule."""

    def compute(self, a, b, n, packed: bool, name: str):
        return matmul_compute(a, b, n, packed, name)

    def schedule(self, sch, root: str, acc: str, max_cols: int | None = None, tile: dict | None = None) -> None:
        schedule_matmul(sch, root, acc)
