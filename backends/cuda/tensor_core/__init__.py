"""Tensor-core matmuls on the cuda target: decide whether a core matmul kernel gets the mma.sync schedule
(tensor_core/schedule.py) and build standalone tensor-core GEMMs (tests, benchmarks/gpu/gemm.py).

fp32 matmuls keep the dlight schedule (no note: that is their schedule). A 16-bit kernel that does not qualify (a symbolic or non-multiple-of-16 M/N/K, no tile within the arch's
limits, or a build whose pass configuration cannot lower mma fragments) raises TensorCoreFallback: the core's
builder then schedules it with the dlight GPU rules and records the reason in the plan notes.
"""
from __future__ import annotations

import tvm
from tvm import te

from ..arch import cuda_arch
from .schedule import schedule_tc
from ..target import cuda_target
from .tiles import TcTile, TcTileError, choose_tile, tile_reason

# TVM's LowerWarpMemory needs each warp-scope fragment allocated outside the threadIdx.x launch; only
# StorageRewrite hoists it there (checked: with tirx.disable_storage_rewrite the build fails "Cannot find warp
# index(threadIdx.x) within the scope of warp memory"). Tensor-core kernels are built with it on, and with
# tirx.use_async_copy so the pipelined shared-memory copies become cp.async.cg (16 B); without that option the
# same schedule keeps synchronous copies (the commit/wait groups are then no-ops), still correct.
TC_PASS_CONFIG = {"tirx.disable_storage_rewrite": False, "tirx.use_async_copy": True}
# what the cuda target's one-library builds override in the core's PASS_CONFIG (backends/cuda/library.py)
CUDA_BUILD_CONFIG = dict(TC_PASS_CONFIG)


def cuda_build_config() -> dict:
    """The TVM pass options a cuda build compiles with: the core's, with the cuda overrides on top."""
    from ...core import builder

    return {**builder.PASS_CONFIG, **CUDA_BUILD_CONFIG}


class TensorCoreFallback(RuntimeError):
    """This matmul kernel keeps the dlight schedule; the message says why (it lands in the plan notes)."""


def _core_storage_rewrite_on() -> bool:
    return not cuda_build_config().get("tirx.disable_storage_rewrite", False)


def _operand_info(sch, acc: str):
    """(dtype, M, N, K) of the core's `acc` block: reads a[bt|0, m, k] and b[(bt,) k, n]."""
    block = sch.get(sch.get_sblock(acc))
    a_buf, b_buf = block.reads[0].source, block.reads[1].source
    if a_buf.dtype != b_buf.dtype:
        raise TensorCoreFallback(f"tensor cores not used: operand dtypes differ ({a_buf.dtype}, {b_buf.dtype})")
    m, k = a_buf.shape[-2], a_buf.shape[-1]
    n = b_buf.shape[-1]
    static = [int(d) if isinstance(d, tvm.tirx.IntImm) else d for d in (m, n, k)]
    return a_buf.dtype, *static


def try_tensor_core(sch, acc: str, arch: str, tile: TcTile | None = None) -> bool:
    """Schedule the core's `acc` matmul (and its epilogue up to `out`) with mma.sync + ldmatrix; True when done.
    Raises TensorCoreFallback (the caller falls back to dlight with a note) when the kernel does not qualify."""
    dtype, m, n, k = _operand_info(sch, acc)
    if dtype == "float32":   # fp32 is not a fallback: mma m16n8k16 takes 16-bit operands; dlight is fp32's schedule
        return False
    reason = tile_reason(m, n, k, dtype)
    if reason is None and not _core_storage_rewrite_on():
        reason = ("this build runs with tirx.disable_storage_rewrite, under which TVM cannot lower mma fragments "
                  "(warp memory)")
    if reason is None:
        try:
            tile = choose_tile(m, n, k, dtype, cuda_arch(arch), tile)
        except TcTileError as e:
            reason = str(e)
    if reason is not None:
        raise TensorCoreFallback(f"tensor cores not used ({reason}); dlight GPU schedule instead")
    schedule_tc(sch, acc, tile, dtype, async_copy=True)
    return True


def gemm_primfunc(m: int, n: int, k: int, dtype: str = "float16", batch: int = 1, bias: bool = False):
    """The core's matmul kernel shape as a standalone PrimFunc: out[bt, m, n] = cast(A[1, m, k] @ B[k, n] (+ bias))
    with fp32 accumulation in block `acc` (the form backends/core/groups.py emits for a Linear)."""
    a = te.placeholder((1, m, k), dtype, name="A")
    b = te.placeholder((k, n), dtype, name="B")
    r = te.reduce_axis((0, k), "k")
    acc = te.compute((batch, m, n), lambda i, x, y: te.sum(a[0, x, r].astype("float32") * b[r, y].astype("float32"),
                                                           axis=r), name="acc")
    args = [a, b]
    if bias:
        c = te.placeholder((n,), dtype, name="bias")
        args.append(c)
        cur = te.compute(acc.shape, lambda i, x, y: (acc[i, x, y] + c[y].astype("float32")).astype(dtype),
                         name="t_bias")
    else:
        cur = te.compute(acc.shape, lambda *i: acc(*i).astype(dtype), name="t_anchor")
    out = te.compute(acc.shape, lambda *i: cur(*i), name="out")
    return te.create_prim_func(args + [out])


def build_tc_gemm(m: int, n: int, k: int, dtype: str = "float16", arch: str = "sm_90a", tile: TcTile | None = None,
                  bias: bool = False, tensorize: bool = True, target: dict | None = None):
    """(tvm Executable, tile) of a tensor-core GEMM; `target` overrides the cuda target (e.g. OpenCL with
    tensorize=False for the CPU check of the loop structure)."""
    func = gemm_primfunc(m, n, k, dtype, bias=bias)
    reason = tile_reason(m, n, k, "float16" if not tensorize else dtype)   # fp32 only without intrinsics
    if reason:
        raise TcTileError(reason)
    tile = choose_tile(m, n, k, dtype, cuda_arch(arch), tile)
    sch = tvm.s_tir.Schedule(func)
    # OpenCL maps only static "shared" to __local memory
    schedule_tc(sch, "acc", tile, dtype, tensorize=tensorize, smem="shared.dyn" if tensorize else "shared",
                async_copy=tensorize)
    with tvm.transform.PassContext(opt_level=3, config=TC_PASS_CONFIG):
        ex = tvm.compile(sch.mod, target=tvm.target.Target(target or cuda_target({"arch": arch})))
    return ex, tile
