"""NEON schedules for the core's kernel classes: "injective", "rows" and "generic".

Sized for a 4-8 core phone CPU with 128-bit NEON: contiguous loops are vectorized in whole
multiples of 4 fp32 lanes and unrolled up to 4 registers (a 16-wide body, so loads and FMAs of
independent registers overlap on the 2-4 ASIMD pipes); parallel loops are left for TVM's pool to
split over the big cores. Every schedule accepts symbolic extents (shape-generic builds): a loop
whose trip count is not a compile-time int is not split for vectors, only parallelized.
"""
from __future__ import annotations

from tvm import s_tir, tirx

from ...core.symbolic import static_int
from .target import fp32_lanes

UNROLL_REGS = 4   # NEON registers per vector body (16 fp32): enough independent work for 2-4 pipes


def trip_count(sch: s_tir.Schedule, loop) -> int | None:
    """Static trip count of `loop`, None when symbolic."""
    return static_int(sch.get(loop).extent)


def reduces(sch: s_tir.Schedule, block) -> bool:
    """Whether `block` has a reduction iterator."""
    return any(v.iter_type == tirx.IterVar.CommReduce for v in sch.get(block).iter_vars)


def inline_producers(sch: s_tir.Schedule, keep: str) -> None:
    """Inline every elementwise/layout block into its readers (the block named `keep` and reductions stay),
    so one fused group becomes one loop nest."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if sch.get(block).name_hint == keep or reduces(sch, block):
            continue
        try:
            sch.compute_inline(block)
        except s_tir.ScheduleError:
            continue   # e.g. a block that writes a function output


def neon_vectorize(sch: s_tir.Schedule, loop) -> bool:
    """Vectorize `loop` in NEON-register multiples: 16, 8 or 4 fp32 lanes when its static extent allows.
    Returns whether it vectorized anything."""
    extent = trip_count(sch, loop)
    lanes = fp32_lanes()
    if extent is None or extent < lanes:
        return False
    for width in (lanes * UNROLL_REGS, lanes * 2, lanes):
        if extent % width == 0:
            inner = loop if extent == width else sch.split(loop, [None, width])[1]
            sch.vectorize(inner)
            return True
    return False


def _parallel(sch: s_tir.Schedule, loops) -> None:
    if loops:
        sch.parallel(loops[0] if len(loops) == 1 else sch.fuse(*loops))


def schedule_injective(sch: s_tir.Schedule, root: str) -> None:
    """Elementwise / layout chains: outer loops fused and parallel, the contiguous last axis in NEON vectors."""
    inline_producers(sch, root)
    loops = sch.get_loops(sch.get_sblock(root))
    if not loops:
        return
    if len(loops) == 1:   # one flat axis: split it into parallel chunks of whole vectors
        extent = trip_count(sch, loops[0])
        width = fp32_lanes() * UNROLL_REGS
        if extent is not None and extent % width == 0 and extent > width:
            outer, inner = sch.split(loops[0], [None, width])
            sch.parallel(outer)
            sch.vectorize(inner)
        else:
            sch.parallel(loops[0])
        return
    last = loops[-1]
    _parallel(sch, loops[:-1])
    neon_vectorize(sch, last)


def schedule_rows(sch: s_tir.Schedule, root: str) -> None:
    """Softmax / norms over the last axis: one parallel task per row, the row's reductions computed
    inside that task (the row stays in L1), the output row written in NEON vectors."""
    inline_producers(sch, root)
    out = sch.get_sblock(root)
    loops = sch.get_loops(out)
    if len(loops) < 2:
        schedule_generic(sch, root)
        return
    row = loops[0] if len(loops) == 2 else sch.fuse(*loops[:-1])
    # readers before their producers, so every producer lands ahead of the block that reads it
    for block in reversed([b for b in sch.get_child_blocks(sch.get_sblock("root")) if reduces(sch, b)]):
        sch.compute_at(block, row)
    sch.parallel(row)
    neon_vectorize(sch, sch.get_loops(out)[-1])


def schedule_generic(sch: s_tir.Schedule, root: str) -> None:
    """Anything else, correct first: inline, then every block's spatial loops fused and parallel."""
    inline_producers(sch, root)
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        spatial = sum(v.iter_type != tirx.IterVar.CommReduce for v in sch.get(block).iter_vars)
        loops = sch.get_loops(block)[:spatial]
        try:
            _parallel(sch, loops)
        except s_tir.ScheduleError:
            continue


SCHEDULES = {"injective": schedule_injective, "rows": schedule_rows, "generic": schedule_generic}
