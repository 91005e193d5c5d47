"""Schedules for the fused groups: injective (elementwise/layout chains), row reductions, generic.

Every schedule first inlines the injective producers into their consumer, so one fused
group is one loop nest, then parallelizes over the two cores and vectorizes the
innermost contiguous loop.
"""
from __future__ import annotations

from tvm import s_tir, tirx

from ..core.symbolic import static_int

VECTOR = 16  # fp32 lanes in one AVX-512 register


def _is_reduction(sch: s_tir.Schedule, block) -> bool:
    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def inline_injective(sch: s_tir.Schedule, keep: set[str]) -> None:
    """compute_inline every spatial block except the ones named in `keep` (producers first)."""
    root = sch.get_sblock("root") if _has_root(sch) else None
    blocks = sch.get_child_blocks(root) if root is not None else []
    for blk in blocks:
        name = sch.get(blk).name_hint
        if name in keep or _is_reduction(sch, blk):
            continue
        try:
            sch.compute_inline(blk)
        except s_tir.ScheduleError:
            pass  # e.g. an output block: keep it


def _has_root(sch) -> bool:
    try:
        sch.get_sblock("root")
        return True
    except Exception:
        return False


def _extent(sch, loop) -> int | None:
    """The loop's trip count, or None when it is symbolic (shape-generic builds)."""
    return static_int(sch.get(loop).extent)


def _vectorize_tail(sch, loop) -> None:
    """Split the innermost loop so its inner part is a whole number of vector lanes, and vectorize it."""
    n = _extent(sch, loop)
    if n is None:
        return  # symbolic innermost extent: no exact vector split; the outer loops still run in parallel
    for lanes in (VECTOR, 8, 4):
        if n % lanes == 0 and n >= lanes:
            if n > lanes:
                _, loop = sch.split(loop, [None, lanes])
            sch.vectorize(loop)
            return


def schedule_injective(sch: s_tir.Schedule, root: str) -> None:
    """Flatten the output loop nest, parallelize the outer part, vectorize the inner part."""
    inline_injective(sch, {root})
    blk = sch.get_sblock(root)
    loops = sch.get_loops(blk)
    if not loops:
        return
    if len(loops) > 1:
        outer = sch.fuse(*loops[:-1])
        sch.parallel(outer)
        _vectorize_tail(sch, loops[-1])
    else:
        n = _extent(sch, loops[0])
        lanes = 1 if n is None else next((v for v in (VECTOR, 8, 4) if n % v == 0 and n > v), 1)
        if lanes > 1:
            o, i = sch.split(loops[0], [None, lanes])
            sch.parallel(o)
            sch.vectorize(i)
        else:
            sch.parallel(loops[0])


def schedule_rows(sch: s_tir.Schedule, root: str) -> None:
    """Norms and softmax over the last axis: one parallel task per row; the row's reductions are
    computed at that row and the output row is vectorized."""
    inline_injective(sch, {root})
    blk = sch.get_sblock(root)
    loops = sch.get_loops(blk)
    if len(loops) < 2:
        return schedule_generic(sch, root)
    row = sch.fuse(*loops[:-1])
    partials = [_vector_partials(sch, b) for b in sch.get_child_blocks(sch.get_sblock("root")) if _is_reduction(sch, b)]
    reductions = [b for b in sch.get_child_blocks(sch.get_sblock("root")) if _is_reduction(sch, b)]
    for r in reversed(reductions):  # consumers first, so each producer lands ahead of its reader
        sch.compute_at(r, row)
    for r in filter(None, partials):   # compute_at left its loops (lanes, row chunks): lanes innermost
        lanes, chunks = sch.get_loops(r)[-2:]
        try:
            sch.reorder(chunks, lanes)
            sch.vectorize(lanes)
        except s_tir.ScheduleError:
            pass   # e.g. a reduction over several axes: the partials stay scalar (still correct)
    sch.parallel(row)
    _vectorize_tail(sch, sch.get_loops(blk)[-1])


def _vector_partials(sch: s_tir.Schedule, block):
    """Split a row reduction into VECTOR partial results (sums, maxima) updated one vector at a time, then
    combined: a scalar loop over the row is one chain of dependent adds (5-10x slower on 512-1024 wide rows).
    Returns the partials' block, or None when the row is symbolic, short or not a multiple of VECTOR."""
    loop = sch.get_loops(block)[-1]
    n = _extent(sch, loop)
    if n is None or n % VECTOR or n < 2 * VECTOR:
        return None
    _, lanes = sch.split(loop, [None, VECTOR])
    spatial = sum(1 for iv in sch.get(block).iter_vars if iv.iter_type != tirx.IterVar.CommReduce)
    try:
        return sch.rfactor(lanes, spatial)   # the lanes axis last: each row's partials are one contiguous vector
    except s_tir.ScheduleError:
        return None   # not an rfactor-able reduction: stays a scalar loop (split, same order)


def schedule_generic(sch: s_tir.Schedule, root: str) -> None:
    """Correct-first schedule for anything else: inline, then run each block's spatial loops in parallel.

    Blocks straight from `te.create_prim_func` have one loop per iter var, spatial ones first.
    """
    inline_injective(sch, {root})
    for blk in sch.get_child_blocks(sch.get_sblock("root")):
        loops = sch.get_loops(blk)
        n_spatial = sum(1 for iv in sch.get(blk).iter_vars if iv.iter_type != tirx.IterVar.CommReduce)
        lead = loops[:n_spatial]
        if lead:
            try:
                sch.parallel(sch.fuse(*lead) if len(lead) > 1 else lead[0])
            except s_tir.ScheduleError:
                pass
