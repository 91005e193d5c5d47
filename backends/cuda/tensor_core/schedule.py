"""Tensor-core GEMM schedule: mma.sync m16n8k16 fed by ldmatrix, operand tiles staged in shared memory.

The core's matmul kernel is `acc[bt, m, n] = sum_k f32(a[bt|0, m, k]) * f32(b[(bt,) k, n])` followed by
elementwise blocks (cast, bias, activation, residual) and the `out` copy. This schedule:
  grid      blockIdx.x over (M / block_m) x (N / block_n) tiles, blockIdx.y over the batch;
  block     warps_m x warps_n warps (threadIdx.y), 32 lanes (threadIdx.x);
  k loop    block_k columns of A and rows of B copied to shared memory (16-byte vector loads, rows padded
            against bank conflicts), software-pipelined over `stages` buffers, as cp.async.cg when the
            build enables tirx.use_async_copy (async_copy=True);
  warp      a warp_m x warp_n accumulator tile in registers (16x16 fragments), ldmatrix.x4 from shared,
            two mma.sync m16n8k16 per 16x16x16 step, fp32 accumulation;
  epilogue  fragments -> the block's fp32 tile in shared memory -> the elementwise chain -> global.
Tiles come from `choose_tile` (tiles.py) and are checked against the arch's limits before scheduling.
"""
from __future__ import annotations

from .intrin import LAYOUT, intrinsics
from .tiles import TcTile

SMEM = "shared.dyn"   # dynamic shared memory: lets one block use more than the 48 KB static limit


def _index_map(ndim: int):
    """(.., row, col) -> (.., row/16, col/16, lane, register) of the mma fragment layout."""
    if ndim == 2:
        return lambda i, j: (i // 16, j // 16, *LAYOUT(i % 16, j % 16))
    return lambda b, i, j: (b, i // 16, j // 16, *LAYOUT(i % 16, j % 16))


def _loops_below(sch, block, parent) -> list:
    """The loops of `block` nested inside loop `parent` (the block's own loops after a compute_at)."""
    loops = sch.get_loops(block)
    at = [n for n, lp in enumerate(loops) if sch.get(lp).same_as(sch.get(parent))][0]
    return loops[at + 1:]


def _inline_epilogue(sch, acc_block, out_name: str):
    """Inline every block between `acc` and `out` (elementwise casts/bias/activations) into `out`."""
    changed = True
    while changed:
        changed = False
        for consumer in sch.get_consumers(acc_block):
            name = sch.get(consumer).name_hint
            if name != out_name:
                sch.compute_inline(consumer)
                changed = True
                break
    return sch.get_sblock(out_name)


def schedule_tc(sch, acc: str, tile: TcTile, dtype: str, out: str = "out", tensorize: bool = True,
                smem: str = SMEM, async_copy: bool = False) -> None:
    """Schedule block `acc` of `sch` (and its elementwise consumers up to `out`) on tensor cores.

    `tensorize=False` builds the same loop nest, staging and layouts without the mma/ldmatrix intrinsics
    (fragments in per-thread local memory; every lane of a warp computes its warp's whole tile) and `smem`
    "shared" (OpenCL __local): the schedule's tiling, staging and epilogue can then run as OpenCL on a CPU
    (tests/backends/test_cuda_tensor_core.py); the intrinsics themselves run only on a GPU."""
    block = sch.get_sblock(acc)
    out_block = _inline_epilogue(sch, block, out)
    frag = "warp" if tensorize else "local"
    bt, i, j, k = sch.get_loops(block)
    i, i_tc = sch.split(i, factors=[None, 16])
    j, j_tc = sch.split(j, factors=[None, 16])
    k, k_tc = sch.split(k, factors=[None, 16])
    sch.reorder(bt, i, j, k, i_tc, j_tc, k_tc)
    inner = sch.blockize(i_tc)        # one 16x16x16 step: the unit the mma intrinsic replaces
    outer, inner = inner, block
    i0, i1, i2 = sch.split(i, factors=[None, tile.warps_m, tile.warp_m // 16])
    j0, j1, j2 = sch.split(j, factors=[None, tile.warps_n, tile.warp_n // 16])
    k0, k1 = sch.split(k, factors=[None, tile.block_k // 16])
    sch.reorder(bt, i0, j0, i1, j1, k0, k1, i2, j2)
    tiles = sch.fuse(i0, j0)
    warps = sch.fuse(i1, j1)
    sch.bind(tiles, "blockIdx.x")
    sch.bind(bt, "blockIdx.y")
    sch.bind(warps, "threadIdx.y")

    def stage_in_shared(index: int):
        copy = sch.cache_read(outer, index, smem)
        sch.compute_at(copy, k0)
        fused = sch.fuse(*_loops_below(sch, copy, k0))
        _, ty, tx, vec = sch.split(fused, factors=[None, tile.warps, 32, 8])   # 8 x b16 = one 16-byte load
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
        sch.vectorize(vec)
        sch.storage_align(copy, 0, axis=-2, factor=32, offset=8)   # row stride + 16 B: no ldmatrix bank conflicts
        return copy

    a_smem = stage_in_shared(0)
    b_smem = stage_in_shared(1)
    a_frag = sch.cache_read(outer, 0, frag)
    b_frag = sch.cache_read(outer, 1, frag)
    sch.compute_at(a_frag, k1)
    sch.compute_at(b_frag, k1)
    c_frag = sch.cache_write(outer, 0, frag)
    sch.reverse_compute_at(c_frag, warps)
    # the block's fp32 tile lands in shared memory so the epilogue can read it with any thread mapping
    sch.set_scope(c_frag, 0, smem)
    ii, jj = sch.get_loops(c_frag)[-2:]
    io, ii = sch.split(ii, factors=[None, 16])
    jo, ji = sch.split(jj, factors=[None, 16])
    sch.reorder(io, jo, ii, ji)
    sch.decompose_reduction(outer, k0)
    init = sch.get_sblock(acc + "_init")   # the 16x16 zero fill inside the blockized init

    def fragment_tiles(copy):
        r, c = sch.get_loops(copy)[-2:]
        r0, r1 = sch.split(r, factors=[None, 16])
        c0, c1 = sch.split(c, factors=[None, 16])
        sch.reorder(r0, c0, r1, c1)
        return r1

    a_loop, b_loop = fragment_tiles(a_frag), fragment_tiles(b_frag)
    # each warp runs the epilogue of its own warp_m x warp_n tile: every threadIdx.x binding then sits inside
    # the warp loop, where TVM's warp-memory lowering looks for the lane index
    sch.reverse_compute_at(out_block, warps)
    fused = sch.fuse(*_loops_below(sch, out_block, warps))
    _, tx, vec = sch.split(fused, factors=[None, 32, 4])
    sch.bind(tx, "threadIdx.x")
    sch.vectorize(vec)
    if tile.stages > 1:
        # A/B copies of step k0+1 overlap the mma of step k0 (double-buffered shared tiles)
        sch.annotate(k0, "software_pipeline_stage", [0, 0, tile.stages - 1])
        sch.annotate(k0, "software_pipeline_order", [0, 1, 2])
        if async_copy:   # cp.async for the copies; needs the build's tirx.use_async_copy (InjectPTXAsyncCopy)
            sch.annotate(k0, "software_pipeline_async_stages", [0])
    if not tensorize:
        return
    names = intrinsics(dtype, smem)
    a_rank = len(sch.get(a_frag).writes[0].region)
    b_rank = len(sch.get(b_frag).writes[0].region)
    sch.transform_layout(a_frag, ("write", 0), _index_map(a_rank))
    sch.transform_layout(b_frag, ("write", 0), _index_map(b_rank))
    sch.transform_layout(c_frag, ("read", 0), _index_map(3))
    sch.tensorize(a_loop, names["load_a"])
    sch.tensorize(b_loop, names["load_b"])
    sch.tensorize(sch.get_loops(inner)[-3], names["compute"])
    sch.tensorize(sch.get_loops(init)[-2], names["init"])
    sch.tensorize(sch.get_loops(c_frag)[-2], names["store"])
