"""Tensor-core intrinsics for the matmul schedule (tensor_core/schedule.py), for fp16 and bf16 operands.

They follow `tvm.s_tir.tensor_intrin.cuda` (ldmatrix.x4, two mma.sync m16n8k16 per 16x16x16 step, fp32 fill
and store), which registers them for float16 only (its ldmatrix asserts float16, its mma table has no "bf16").
ldmatrix moves untyped b16 words and PTX's `mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32` has the same
fragment layout as the f16 form (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), so one
generator serves both dtypes. Importing TVM's module would parse all 81 of its intrinsics (about a minute on a
loaded 2-core machine, paid by every cuda build with a matmul); these are registered lazily, five per dtype.
"""
from __future__ import annotations

from tvm.runtime import convert
from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T
from tvm.tirx import Cast

WARP = 32
LOCAL = 8            # 16x16 b16 (or fp32 accumulator) elements per lane: 256 / 32


def LAYOUT(i, j):
    """(lane, register) holding element (i, j) of a 16x16 mma fragment (PTX ISA m16n8k16 fragment layout for
    A/C, as TVM's shared_16x16_to_ldmatrix_32x8_layout): lane 4 * (i % 8) + (j % 8) / 2."""
    return 4 * (i % 8) + (j % 8) // 2, 4 * (j // 8) + (i // 8) * 2 + (j % 2)


_ABBR = {"float16": "fp16", "bfloat16": "bf16"}


def _fragment(handle, dtype: str):
    """The warp fragment buffer (32 lanes x 8 registers) behind `handle`, as every intrinsic here matches it."""
    return T.match_buffer(handle, (WARP, LOCAL), dtype, align=64, offset_factor=16, scope="warp")


@T.macro
def _tile_fragment_copy(tile, frag, name: str, to_fragment: bool):
    """What ldmatrix (tile -> fragment) and the fragment store (fragment -> tile) mean, element by element through
    LAYOUT: the descriptions their implementations are matched against."""
    for i0, i1 in T.grid(16, 16):
        with T.sblock(name):
            v0, v1 = T.axis.remap("SS", [i0, i1])
            lane, reg = T.meta_var(LAYOUT(v0, v1))
            if to_fragment:
                T.reads(tile[v0, v1])
                T.writes(frag[lane, reg])
                frag[lane, reg] = tile[v0, v1]
            else:
                T.reads(frag[lane, reg])
                T.writes(tile[v0, v1])
                tile[v0, v1] = frag[lane, reg]


def _ldmatrix(dtype: str, operand: str, scope: str):
    """ldmatrix.x4 of a 16x16 tile of A ([M, K] row-major) or B ([K, N] row-major, loaded .trans)."""
    trans = operand == "B"     # B is stored K-major; mma wants it "col": ldmatrix .trans transposes 8x8 blocks
    half = convert(16)

    @T.prim_func(s_tir=True)
    def desc(warp_handle: T.handle, shared_handle: T.handle) -> None:
        shared = T.match_buffer(shared_handle, (16, 16), dtype, align=64, offset_factor=16, scope=scope)
        warp = _fragment(warp_handle, dtype)
        with T.sblock("root"):
            T.reads(shared[0:16, 0:16])
            T.writes(warp[0:WARP, 0:LOCAL])
            _tile_fragment_copy(shared, warp, "shared_warp", True)

    @T.prim_func(s_tir=True)
    def impl(warp_handle: T.handle, shared_handle: T.handle) -> None:
        s0 = T.int32()
        s1 = T.int32()
        shared = T.match_buffer(shared_handle, (16, 16), dtype, align=64, offset_factor=16, scope=scope,
                                strides=[s0, s1])
        warp = _fragment(warp_handle, dtype)
        with T.sblock("root"):
            T.reads(shared[0:16, 0:16])
            T.writes(warp[0:WARP, 0:LOCAL])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                # lane tx points at row tx % 16, column block tx // 16 (TVM's non-transposed-layout offset)
                T.evaluate(T.ptx_legacy.ldmatrix(trans, 4, ".b16", warp.data, warp.elem_offset + LOCAL * tx,
                                                 shared.access_ptr("r"), s0 * (tx % half) + 8 * (tx // half),
                                                 dtype=dtype))

    return desc, impl


def _mma(dtype: str):
    """C[16, 16] (fp32, warp fragments) += A[16, 16] @ B[16, 16] as two mma.sync m16n8k16 (n = 0..7, 8..15)."""
    ab = _ABBR[dtype]

    @T.macro
    def operands(A, B, C):
        T.reads(C[0:WARP, 0:LOCAL], A[0:WARP, 0:LOCAL], B[0:WARP, 0:LOCAL])
        T.writes(C[0:WARP, 0:LOCAL])

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = _fragment(a, dtype)
        B = _fragment(b, dtype)
        C = _fragment(c, "float32")
        with T.sblock("root"):
            operands(A, B, C)
            for i, j, k in T.grid(16, 16, 16):
                with T.sblock("C"):
                    vi, vj, vk = T.axis.remap("SSR", [i, j, k])
                    tc, lc = T.meta_var(LAYOUT(vi, vj))
                    ta, la = T.meta_var(LAYOUT(vi, vk))
                    tb, lb = T.meta_var(LAYOUT(vk, vj))
                    T.reads(C[tc, lc], A[ta, la], B[tb, lb])
                    T.writes(C[tc, lc])
                    C[tc, lc] += Cast("float32", A[ta, la]) * Cast("float32", B[tb, lb])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = _fragment(a, dtype)
        B = _fragment(b, dtype)
        C = _fragment(c, "float32")
        with T.sblock("root"):
            operands(A, B, C)
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                T.evaluate(T.ptx_legacy.mma("m16n8k16", "row", "col", ab, ab, "fp32", A.data,
                                            A.elem_offset + tx * LOCAL, B.data, B.elem_offset + tx * LOCAL,
                                            C.data, C.elem_offset + tx * LOCAL, False, dtype="float32"))
                T.evaluate(T.ptx_legacy.mma("m16n8k16", "row", "col", ab, ab, "fp32", A.data,
                                            A.elem_offset + tx * LOCAL, B.data,
                                            B.elem_offset + tx * LOCAL + LOCAL // 2, C.data,
                                            C.elem_offset + tx * LOCAL + LOCAL // 2, False, dtype="float32"))

    return desc, impl


def _fill():
    """Zero a 16x16 fp32 accumulator fragment."""

    @T.prim_func(s_tir=True)
    def desc(a: T.handle) -> None:
        C = T.match_buffer(a, (WARP, LOCAL), "float32", scope="warp")
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:WARP, 0:LOCAL])
            for i0, i1 in T.grid(16, 16):
                with T.sblock("C_warp"):
                    i, j = T.axis.remap("SS", [i0, i1])
                    lane, reg = T.meta_var(LAYOUT(i, j))
                    T.reads()
                    T.writes(C[lane, reg])
                    C[lane, reg] = T.float32(0)

    @T.prim_func(s_tir=True)
    def impl(a: T.handle) -> None:
        C = T.match_buffer(a, (WARP, LOCAL), "float32", scope="warp", offset_factor=1)
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:WARP, 0:LOCAL])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                T.evaluate(T.cuda.mma_fill_legacy(LOCAL, C.data, C.elem_offset, dtype="float32"))

    return desc, impl


def _store(scope: str):
    """A 16x16 fp32 accumulator fragment -> a 16x16 tile in `scope` (plain per-lane stores)."""

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, c: T.handle) -> None:
        W = T.match_buffer(a, (WARP, LOCAL), "float32", scope="warp")
        C = T.match_buffer(c, (16, 16), "float32", scope=scope)
        with T.sblock("root"):
            T.reads(W[0:WARP, 0:LOCAL])
            T.writes(C[0:16, 0:16])
            _tile_fragment_copy(C, W, "C_warp", False)

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, c: T.handle) -> None:
        s0 = T.int32()
        s1 = T.int32()
        W = T.match_buffer(a, (WARP, LOCAL), "float32", scope="warp", offset_factor=1)
        C = T.match_buffer(c, (16, 16), "float32", scope=scope, offset_factor=1, strides=[s0, s1])
        with T.sblock("root"):
            T.reads(W[0:WARP, 0:LOCAL])
            T.writes(C[0:16, 0:16])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                for reg in T.serial(LOCAL):
                    # inverse of LAYOUT: lane tx, register reg -> (row, col)
                    C[8 * (reg % 4 // 2) + tx // 4, 8 * (reg // 4) + tx % 4 * 2 + reg % 2] = W[tx, reg]

    return desc, impl


def _register(name: str, make) -> str:
    """Register `make()`'s (desc, impl) under `name` once per process."""
    if name not in _REGISTERED:
        TensorIntrin.register(name, *make(), override=True)
        _REGISTERED.add(name)
    return name


_REGISTERED: set[str] = set()


def intrinsics(dtype: str, smem_scope: str = "shared.dyn") -> dict[str, str]:
    """Names of the registered intrinsics for `dtype` (float16 | bfloat16) operands in `smem_scope`:
    load_a / load_b (ldmatrix), compute (mma.sync, fp32 accumulate), init (zero fill), store (to `smem_scope`)."""
    short = {"float16": "f16", "bfloat16": "bf16"}[dtype]
    scope = smem_scope.replace(".", "_")
    return {"load_a": _register(f"attncc_ldmatrix_{short}_a_{scope}", lambda: _ldmatrix(dtype, "A", smem_scope)),
            "load_b": _register(f"attncc_ldmatrix_{short}_b_{scope}", lambda: _ldmatrix(dtype, "B", smem_scope)),
            "compute": _register(f"attncc_mma_{short}{short}f32", lambda: _mma(dtype)),
            "init": _register("attncc_mma_fill_16x16_f32", _fill),
            "store": _register(f"attncc_mma_store_16x16_f32_{scope}", lambda: _store(smem_scope))}
