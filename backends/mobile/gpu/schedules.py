"""OpenCL schedules for the core's kernel classes: every loop nest bound to work-groups and work-items.

A GPU kernel may not keep an unbound loop nest, and the OpenCL executor replays straight-line launches of
kernels whose tensors are the function's own arguments, so every schedule here produces ONE kernel:
- injective: producers inlined, the output's loops fused and split into (work-group, work-item);
- rows (softmax, norms, reductions): one work-item per output row; the row's reductions are computed by
  that work-item under its row loop into private (`local`-scope) storage, then the row is written;
- generic: like rows over the output's every spatial loop (each intermediate recomputed per element, in
  private storage): slow but correct for any TE graph, the fallback when the others do not apply.
Work-group sizes come from the device limits (spec.opencl_limits).
"""
from __future__ import annotations

from tvm import s_tir, tirx

from ...core.symbolic import static_int
from .spec import opencl_limits

ROWS_PER_GROUP = 64     # work-items per work-group for row kernels (a row each)


def _blocks(sch: s_tir.Schedule) -> list:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _reduces(sch: s_tir.Schedule, block) -> bool:
    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def _inline_spatial(sch: s_tir.Schedule, root: str) -> None:
    """Inline every non-reduction block but `root` into its consumers (producers first)."""
    for blk in _blocks(sch):
        if sch.get(blk).name_hint == root or _reduces(sch, blk):
            continue
        try:
            sch.compute_inline(blk)
        except s_tir.ScheduleError:
            pass   # kept: e.g. read by a reduction through a non-inlinable pattern


def _spatial_loops(sch: s_tir.Schedule, block) -> list:
    """The block's outer loops that bind its data-parallel iterators (TE puts them first)."""
    n = sum(1 for iv in sch.get(block).iter_vars if iv.iter_type == tirx.IterVar.DataPar)
    return list(sch.get_loops(block))[:n]


def _bind_flat(sch: s_tir.Schedule, loops: list, threads: int):
    """Fuse `loops`, split into (groups, `threads` work-items) and bind; returns the work-item loop."""
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    total = static_int(sch.get(fused).extent)
    t = max(1, min(threads, total or threads))
    groups, items = sch.split(fused, [None, t])
    sch.bind(groups, "blockIdx.x")
    sch.bind(items, "threadIdx.x")
    return items


def _pull_under(sch: s_tir.Schedule, root: str, loop) -> None:
    """Move every other block under `loop` (consumers first) and keep its result private to the work-item."""
    for blk in reversed(_blocks(sch)):
        if sch.get(blk).name_hint == root:
            continue
        sch.compute_at(blk, loop, preserve_unit_loops=True)
        sch.set_scope(blk, 0, "local")


def schedule_injective(sch: s_tir.Schedule, root: str) -> None:
    """Elementwise/layout chains: one work-item per output element, groups of the work-group limit."""
    _inline_spatial(sch, root)
    out = sch.get_sblock(root)
    if len(_blocks(sch)) > 1:      # something could not be inlined: the generic single-kernel form
        schedule_generic(sch, root)
        return
    _bind_flat(sch, _spatial_loops(sch, out), opencl_limits().max_work_group_size)


def schedule_rows(sch: s_tir.Schedule, root: str) -> None:
    """Row reductions (softmax, norms): a work-item per row of the output, the row's statistics private."""
    _inline_spatial(sch, root)
    out = sch.get_sblock(root)
    loops = _spatial_loops(sch, out)
    if len(loops) < 2 or all(not _reduces(sch, b) for b in _blocks(sch) if sch.get(b).name_hint != root):
        schedule_generic(sch, root)
        return
    item = _bind_flat(sch, loops[:-1], min(ROWS_PER_GROUP, opencl_limits().max_work_group_size))
    _pull_under(sch, root, item)


def schedule_generic(sch: s_tir.Schedule, root: str) -> None:
    """Any TE graph as one kernel: a work-item per output element, intermediates recomputed privately."""
    _inline_spatial(sch, root)
    out = sch.get_sblock(root)
    loops = _spatial_loops(sch, out)
    if not loops:   # a scalar output: one work-item
        loops = [sch.add_unit_loop(out)]
    item = _bind_flat(sch, loops, min(ROWS_PER_GROUP, opencl_limits().max_work_group_size))
    _pull_under(sch, root, item)


SCHEDULES = {"injective": schedule_injective, "rows": schedule_rows, "generic": schedule_generic}
