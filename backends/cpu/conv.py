"""CPU schedule of the direct convolution (grouped and depthwise convolutions; see core/conv_lowering.py).

The padded input is materialized once (parallel over its rows), so the inner loop reads contiguous input
rows without a bounds test. Each parallel task owns one (n, c_out, output row) line; the accumulator of a
vector-wide strip of output columns lives in registers, the reduction (input channels of the group, kernel
rows, kernel columns) runs outside the vector loop, and the kernel-column loop is unrolled.
"""
from __future__ import annotations

from tvm import s_tir

from ..core.symbolic import static_int
from .schedules import VECTOR, inline_injective


def _strip(n: int | None) -> int:
    """Output columns per register strip: the widest of 16/8/4 dividing n (1: no vector loop)."""
    if n is None:
        return 1
    for lanes in (VECTOR, 8, 4):
        if n % lanes == 0:
            return lanes
    return 1


def schedule_conv_direct(sch: s_tir.Schedule, root: str, acc: str, pad: str) -> None:
    """Register-strip the direct conv accumulator `acc` under the output block `root` (N, C, *spatial)."""
    blocks = {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}
    inline_injective(sch, {root, pad})
    out = sch.get_sblock(root)
    loops = sch.get_loops(out)
    last = loops[-1]
    lanes = _strip(static_int(sch.get(last).extent))
    if lanes > 1:
        wo, wi = sch.split(last, [None, lanes])
    else:
        wo, wi = last, None
    outer = sch.fuse(*loops[:-1])
    c = sch.get_sblock(acc)
    sch.compute_at(c, wo)
    sch.set_scope(c, 0, "local")
    # under (fused row, column strip): the strip's columns (compute_at drops extent-1 loops), then the reductions
    own = sch.get_loops(c)[2:]
    strip = own[:1] if lanes > 1 else []
    reductions = own[len(strip):]
    if strip:
        sch.reorder(*reductions, *strip)
        sch.vectorize(strip[-1])
    if reductions:
        inner = reductions[-1]
        if (static_int(sch.get(inner).extent) or 0) <= 16:
            sch.unroll(inner)
    if wi is not None:
        sch.vectorize(wi)
    sch.parallel(outer)
    if reductions:
        sch.decompose_reduction(c, reductions[0])
    if pad in blocks:  # the padded input: one parallel pass, vectorized along its rows
        p = sch.get_sblock(pad)
        ploops = sch.get_loops(p)
        sch.parallel(sch.fuse(*ploops[:-1]) if len(ploops) > 1 else ploops[0])
