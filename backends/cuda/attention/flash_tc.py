"""Tensor-core flash prefill for the cuda target (fp16/bf16, head dims multiples of 16), one TIR PrimFunc.

Layout (FlashAttention-2 style): a block of NW warps holds BQ = 16 * NW packed query rows (GQA packing as in
flash.py: packed row r of KV head g is position r // G of head g * G + r % G); warp w owns rows 16w..16w+15.
Per BK-key step inside the block's visible range (causal / window block skipping as flash.py), K and V tiles
are staged in shared memory, then per warp:
  S = Q K^T   ldmatrix.x4 of Q (row-major A) and of K (non-transposed: K's rows are B's columns), two
              mma.sync m16n8k16 per 16x16x16 step, fp32 fragments in registers;
  softmax     scale / softcap / masks applied on the fragment elements (each knows its row and key), running
              max per row combined over the row's 4 lanes with __shfl_xor_sync, exp2 domain, row sums kept
              per lane and combined once at the end;
  O += P V    P (rounded to the storage dtype, as FlashAttention does) taken from the S fragments as the A
              fragments (the C layout of two n8 tiles is the A layout of one 16x16 tile), ldmatrix.x4.trans
              of V, mma.sync into fp32 output fragments.
Fragment layouts follow the PTX ISA ("Matrix Fragments for mma.m16n8k16", f16/bf16 A/B, f32 C): lane
4g + t, register i of a C tile holds (row g + 8 * (i // 2), column 2t + i % 2).

`tensorize=False` builds the same kernel (tiles, staging, fragment element ownership, softmax) with each
ldmatrix+mma replaced by scalar dot products over the shared tiles (P then goes through a shared tile), so it runs
as OpenCL on PoCL (fp32) against torch; tensorize="emulate" replaces each ldmatrix / mma.sync by its PTX-ISA
semantics (lanes exchange addresses and fragments through shared scratch), keeping the CUDA build's lane addresses
and fragment offsets, so the fragment layouts are checked on PoCL too; the instructions themselves run only on a
GPU.
"""
from __future__ import annotations

from tvm import tirx
from tvm.script import tirx as T

from ..arch import CudaArch
from .flash import LOG2E, NEG, f32, flash_entry, score_mods, sizes

ELEM = {"float16": 2, "bfloat16": 2, "float32": 4}
PAD = 8                   # row padding (elements): 16 B for 16-bit rows, so ldmatrix rows hit distinct banks
REG_OVERHEAD = 48         # indices, softmax state, addresses (estimate; ptxas has the real count)
TC_DTYPES = ("float16", "bfloat16")


def tc_shared_bytes(bq: int, bk: int, d: int, dv: int, dtype: str) -> int:
    """Shared bytes per block: Q, K, V tiles (padded rows)."""
    e = ELEM[dtype]
    return (bq * (d + PAD) + bk * (d + PAD) + bk * (dv + PAD)) * e


def tc_registers(bk: int, dv: int) -> int:
    """Registers per thread (estimate): S fragments (BK / 16 x 8 fp32), O fragments (Dv / 16 x 8 fp32), one A
    and one B fragment (4 + 4 32-bit registers), overhead."""
    return bk // 2 + dv // 2 + 8 + REG_OVERHEAD


def tc_reason(cfg, splits: int, v_from_k: bool = False) -> str | None:
    """Why `cfg` keeps the CUDA-core flash kernel (None: the tensor-core kernel applies)."""
    if cfg.dtype not in TC_DTYPES:
        return f"dtype {cfg.dtype} (mma.sync m16n8k16 takes float16/bfloat16)"
    if cfg.head_dim % 16 or cfg.v_head_dim % 16:
        return f"head dims {cfg.head_dim}/{cfg.v_head_dim} are not multiples of 16"
    if splits > 1:
        return f"split-KV decode ({splits} splits) uses the CUDA-core decode kernel"
    if v_from_k:
        return "absorbed MLA uses its own kernel"
    return None


def tc_tile(bq: int, bk: int, cfg, arch: CudaArch) -> tuple[int, int] | str:
    """(BQ, BK) within `arch`'s limits, at most the given (flash.py's) tile; or the reason none fits."""
    for q in (b for b in (64, 32, 16) if b <= max(16, bq)):
        for k in (b for b in (64, 32, 16) if b <= max(16, bk)):
            smem = tc_shared_bytes(q, k, cfg.head_dim, cfg.v_head_dim, cfg.dtype)
            if smem <= arch.max_shared_per_block and tc_registers(k, cfg.v_head_dim) <= arch.max_registers_per_thread:
                return q, k
    return (f"no tensor-core tile fits head dims {cfg.head_dim}/{cfg.v_head_dim} on {arch.arch} (16 x 16 needs "
            f"{tc_shared_bytes(16, 16, cfg.head_dim, cfg.v_head_dim, cfg.dtype)} B shared, "
            f"~{tc_registers(16, cfg.v_head_dim)} registers per thread)")


def flash_tc_primfunc(cfg, bq: int = 64, bk: int = 64, tensorize: bool | str = True, smem: str = "shared.dyn"):
    """The PrimFunc (q, k, v[, mask], out) for `cfg` on tensor cores with BQ x BK tiles. With tensorize=False
    (and smem="shared", OpenCL's __local) the mma/ldmatrix are scalar code: the PoCL check of the loop nest.
    tensorize="emulate": each ldmatrix / mma.sync is replaced by its PTX-ISA semantics executed per lane through
    shared scratch (lane addresses and fragments exchanged with barriers), with the same lane addresses and
    fragment offsets as the PTX build: the PoCL check of the fragment layouts."""
    B, QL, KL = sizes(cfg)
    HKV, G, D, DV, DT = cfg.kv_heads, cfg.group, cfg.head_dim, cfg.v_head_dim, cfg.dtype
    assert D % 16 == 0 and DV % 16 == 0 and bq % 16 == 0 and bk % 16 == 0
    EMU = tensorize == "emulate"
    SCALAR = tensorize is False
    PTX = tensorize is True
    if tensorize is True:
        assert DT in TC_DTYPES, DT
    BQ, BK, NW = bq, bk, bq // 16
    NT = 32 * NW
    DQ, DVP, BKP = D + PAD, DV + PAD, BK + PAD
    NS, NO = BK // 16 * 8, DV // 16 * 8          # fp32 fragment registers per lane: S tile, O tile
    ROWS = QL * G
    NQB = (ROWS + BQ - 1) // BQ
    OFF = KL - QL if cfg.alignment == "bottom_right" else 0
    WL, WR = cfg.eff_window_left, cfg.eff_window_right
    MASK = cfg.mask_input
    SYNC = "shared.dyn" if smem == "shared.dyn" else "shared"
    AB = {"float16": "fp16", "bfloat16": "bf16"}.get(DT, "fp16")

    score, visible = score_mods(cfg, OFF)

    def frag_row(i):       # row (0..15) of register i of a 16x8 C tile in lane 4g + t: + g
        return 8 * ((i % 4) // 2)

    def frag_col(c):       # column of fragment register c (c // 8: 16-wide tile, c // 4 % 2: its n8 half) : + 2t
        return (c // 8) * 16 + (c // 4 % 2) * 8 + c % 2

    def interior(k0, k_hi, bx, p_lo, p_hi):
        """True where the BQ x BK block step needs no per-element mask: all its rows exist, all its keys are
        below k_hi and inside every row's causal / window range (no mask input; a softcap is per element anyway
        and applied on both paths). False (always the masked path) with a mask input."""
        if MASK != "none":
            return tirx.const(False, "bool")
        ok = tirx.all(k0 + BK <= k_hi, bx * BQ + BQ <= ROWS)
        if WR is not None:
            ok = tirx.all(ok, k0 + BK - 1 <= p_lo + WR)
        if WL is not None:
            ok = tirx.all(ok, k0 >= p_hi - WL)
        return ok

    @T.macro
    def ldm(trans, dst, src, offset, w, lane, scr_addr):
        """ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16 into dst[0:8]; lane l supplies the address of row l % 8
        of matrix l // 8 (`offset`, in elements of `src`)."""
        if not EMU:
            T.evaluate(T.ptx_legacy.ldmatrix(trans, 4, ".b16", dst.data, 0, src.access_ptr("r"), offset, dtype=DT))
        else:
            T.tvm_storage_sync(SYNC)
            scr_addr[w, lane] = offset
            T.tvm_storage_sync(SYNC)
            # PTX ISA (ldmatrix): lane l receives register i = elements (row l // 4, columns 2 (l % 4), +1) of
            # matrix i; .trans: of matrix i transposed
            for i in T.unroll(4):
                for e in T.unroll(2):
                    if trans:
                        dst[2 * i + e] = src[(scr_addr[w, 8 * i + 2 * (lane % 4) + e] + lane // 4) // src.shape[1],
                                             (scr_addr[w, 8 * i + 2 * (lane % 4) + e] + lane // 4) % src.shape[1]]
                    else:
                        dst[2 * i + e] = src[(scr_addr[w, 8 * i + lane // 4] + 2 * (lane % 4) + e) // src.shape[1],
                                             (scr_addr[w, 8 * i + lane // 4] + 2 * (lane % 4) + e) % src.shape[1]]

    @T.macro
    def mma(acc, coff, boff, fa, fb, w, lane, scr_a, scr_b):
        """mma.sync.aligned.m16n8k16.row.col.f32: acc[coff:coff+4] += A (fa[0:8]) @ B (fb[boff:boff+4])."""
        if not EMU:
            T.evaluate(T.ptx_legacy.mma("m16n8k16", "row", "col", AB, AB, "fp32", fa.data, 0, fb.data, boff,
                                        acc.data, coff, False, dtype="float32"))
        else:
            T.tvm_storage_sync(SYNC)
            for r in T.unroll(8):
                scr_a[w, lane, r] = fa[r]
            for r in T.unroll(4):
                scr_b[w, lane, r] = fb[boff + r]
            T.tvm_storage_sync(SYNC)
            # PTX ISA fragments for m16n8k16 (f16/bf16 A, B; f32 C), g = lane // 4, t = lane % 4:
            # A (r, k): lane 4 (r % 8) + (k % 8) // 2, element k % 2 + 2 (r // 8) + 4 (k // 8)
            # B (k, n): lane 4 n + (k % 8) // 2, element k % 2 + 2 (k // 8)
            # C element i: (row g + 8 (i // 2), column 2 t + i % 2)
            for i in T.unroll(4):
                for kk in T.serial(16):
                    acc[coff + i] = acc[coff + i] + f32(
                        scr_a[w, 4 * ((lane // 4 + 8 * (i // 2)) % 8) + kk % 8 // 2,
                              kk % 2 + 2 * ((lane // 4 + 8 * (i // 2)) // 8) + 4 * (kk // 8)]) * f32(
                        scr_b[w, 4 * (2 * (lane % 4) + i % 2) + kk % 8 // 2, kk % 2 + 2 * (kk // 8)])

    @T.macro
    def quad_reduce(st, i, is_max, w, lane, scr_f):
        """st[i] <- max (or sum) of st[i] over the 4 lanes of this lane's quad (the lanes sharing its fragment
        rows): two xor butterflies, __shfl_xor_sync on the GPU, a shared-memory exchange in the OpenCL forms."""
        if PTX:
            if is_max:
                st[i] = T.max(st[i], T.tvm_warp_shuffle_xor(T.uint32(0xFFFFFFFF), st[i], 1, 32, 32))
                st[i] = T.max(st[i], T.tvm_warp_shuffle_xor(T.uint32(0xFFFFFFFF), st[i], 2, 32, 32))
            else:
                st[i] = st[i] + T.tvm_warp_shuffle_xor(T.uint32(0xFFFFFFFF), st[i], 1, 32, 32)
                st[i] = st[i] + T.tvm_warp_shuffle_xor(T.uint32(0xFFFFFFFF), st[i], 2, 32, 32)
        else:
            for o in T.unroll(2):
                T.tvm_storage_sync(SYNC)
                scr_f[w, lane] = st[i]
                T.tvm_storage_sync(SYNC)
                if is_max:
                    st[i] = T.max(st[i], scr_f[w, T.bitwise_xor(lane, o + 1)])
                else:
                    st[i] = st[i] + scr_f[w, T.bitwise_xor(lane, o + 1)]

    @T.macro
    def body(Q, K, V, M, O):
        for bx in T.thread_binding(NQB, thread="blockIdx.x"):
            for by in T.thread_binding(B * HKV, thread="blockIdx.y"):
                for tx in T.thread_binding(NT, thread="threadIdx.x"):
                    with T.sblock("flash_tc"):
                        T.reads()
                        T.writes()
                        Qs = T.sblock_alloc_buffer((BQ, DQ), DT, scope=smem)
                        Ks = T.sblock_alloc_buffer((BK, DQ), DT, scope=smem)
                        Vs = T.sblock_alloc_buffer((BK, DVP), DT, scope=smem)
                        Ps = T.sblock_alloc_buffer((BQ if SCALAR else 1, BKP), DT, scope=smem)   # P (scalar form only)
                        sacc = T.sblock_alloc_buffer((NS,), "float32", scope="local")
                        oacc = T.sblock_alloc_buffer((NO,), "float32", scope="local")
                        fa = T.sblock_alloc_buffer((8,), DT, scope="local")
                        fb = T.sblock_alloc_buffer((8,), DT, scope="local")
                        st = T.sblock_alloc_buffer((8,), "float32", scope="local")  # m[2], l[2], m_new[2], alpha[2]
                        # lane exchange of the emulated ldmatrix / mma (tensorize="emulate" only)
                        scr_addr = T.sblock_alloc_buffer((NW if EMU else 1, 32), "int32", scope=smem)
                        scr_a = T.sblock_alloc_buffer((NW if EMU else 1, 32, 8), DT, scope=smem)
                        scr_b = T.sblock_alloc_buffer((NW if EMU else 1, 32, 4), DT, scope=smem)
                        scr_f = T.sblock_alloc_buffer((1 if PTX else NW, 32), "float32", scope=smem)   # quad exchange
                        b: T.let[T.int32] = by // HKV
                        hk: T.let[T.int32] = by % HKV
                        w: T.let[T.int32] = tx // 32
                        lane: T.let[T.int32] = tx % 32
                        g: T.let[T.int32] = lane // 4
                        t4: T.let[T.int32] = lane % 4
                        r0: T.let[T.int32] = w * 16 + g          # this lane's block rows: r0 and r0 + 8
                        p_lo: T.let[T.int32] = (bx * BQ) // G + OFF
                        p_hi: T.let[T.int32] = (T.min(bx * BQ + BQ, ROWS) - 1) // G + OFF
                        k_lo: T.let[T.int32] = T.max(0, p_lo - WL) if WL is not None else 0
                        k_hi: T.let[T.int32] = T.min(KL, p_hi + WR + 1) if WR is not None else KL
                        # global -> shared in 8-element (16-byte for 16-bit types) vectors
                        for i in T.serial((BQ * D // 8 + NT - 1) // NT):
                            idx: T.let[T.int32] = i * NT + tx
                            qr: T.let[T.int32] = T.min(bx * BQ + idx // (D // 8), ROWS - 1)
                            if idx < BQ * D // 8:
                                for e in T.vectorized(8):
                                    Qs[idx // (D // 8), idx % (D // 8) * 8 + e] = Q[b, hk * G + qr % G, qr // G,
                                                                                     idx % (D // 8) * 8 + e]
                        for rr in T.unroll(2):
                            st[rr] = T.float32(NEG)
                            st[2 + rr] = T.float32(0)
                        for c in T.unroll(NO):
                            oacc[c] = T.float32(0)
                        for kt in T.serial((T.max(k_hi - k_lo, 0) + BK - 1) // BK):
                            k0: T.let[T.int32] = k_lo + kt * BK
                            T.tvm_storage_sync(SYNC)
                            for i in T.serial((BK * D // 8 + NT - 1) // NT):
                                idx: T.let[T.int32] = i * NT + tx
                                if idx < BK * D // 8:
                                    for e in T.vectorized(8):
                                        Ks[idx // (D // 8), idx % (D // 8) * 8 + e] = K[
                                            b, hk, T.min(k0 + idx // (D // 8), KL - 1), idx % (D // 8) * 8 + e]
                            for i in T.serial((BK * DV // 8 + NT - 1) // NT):
                                idx: T.let[T.int32] = i * NT + tx
                                if idx < BK * DV // 8:
                                    for e in T.vectorized(8):
                                        Vs[idx // (DV // 8), idx % (DV // 8) * 8 + e] = V[
                                            b, hk, T.min(k0 + idx // (DV // 8), KL - 1), idx % (DV // 8) * 8 + e]
                            T.tvm_storage_sync(SYNC)
                            # S = Q K^T on this warp's 16 rows x BK keys
                            for c in T.unroll(NS):
                                sacc[c] = T.float32(0)
                            if tensorize is not False:
                                for j in T.unroll(BK // 16):
                                    for kd in T.unroll(D // 16):
                                        # A: lane l points at Q row l % 16, column block l // 16
                                        ldm(False, fa, Qs, (w * 16 + lane % 16) * DQ + kd * 16 + 8 * (lane // 16),
                                            w, lane, scr_addr)
                                        # B = K^T: matrices (keys 0-7, d 0-7), (0-7, 8-15), (8-15, 0-7), (8-15, 8-15)
                                        ldm(False, fb, Ks,
                                            (j * 16 + lane % 8 + 8 * (lane // 16)) * DQ + kd * 16 + 8 * (lane // 8 % 2),
                                            w, lane, scr_addr)
                                        for h in T.unroll(2):
                                            mma(sacc, j * 8 + 4 * h, 4 * h, fa, fb, w, lane, scr_a, scr_b)
                            else:
                                for c in T.unroll(NS):
                                    for d in T.serial(D):
                                        sacc[c] = sacc[c] + f32(Qs[r0 + frag_row(c), d]) * f32(
                                            Ks[frag_col(c) + 2 * t4, d])
                            # modifiers + masks per element, then this lane's row maxima
                            for rr in T.unroll(2):
                                st[4 + rr] = T.float32(NEG)
                            if interior(k0, k_hi, bx, p_lo, p_hi):
                                # every (row, key) of this block step is visible: no per-element masking
                                for c in T.unroll(NS):
                                    sacc[c] = score(sacc[c], M, b, hk, 0, 0) * T.float32(LOG2E)
                                    st[4 + c % 4 // 2] = T.max(st[4 + c % 4 // 2], sacc[c])
                            else:
                                for c in T.unroll(NS):
                                    grow: T.let[T.int32] = bx * BQ + r0 + frag_row(c)
                                    crow: T.let[T.int32] = T.min(grow, ROWS - 1)
                                    kp: T.let[T.int32] = k0 + frag_col(c) + 2 * t4
                                    sacc[c] = T.if_then_else(
                                        visible(M, b, hk * G + crow % G, crow // G, kp, k_hi, grow < ROWS),
                                        score(sacc[c], M, b, hk * G + crow % G, crow // G, kp) * T.float32(LOG2E),
                                        T.float32(NEG))
                                    st[4 + c % 4 // 2] = T.max(st[4 + c % 4 // 2], sacc[c])
                            for rr in T.unroll(2):
                                quad_reduce(st, 4 + rr, True, w, lane, scr_f)
                                st[4 + rr] = T.max(st[rr], st[4 + rr])
                                st[6 + rr] = T.exp2(st[rr] - st[4 + rr])
                                st[2 + rr] = st[2 + rr] * st[6 + rr]
                                st[rr] = st[4 + rr]
                            for c in T.unroll(NS):
                                sacc[c] = T.if_then_else(sacc[c] > T.float32(NEG / 2),
                                                         T.exp2(sacc[c] - st[c % 4 // 2]), T.float32(0))
                                st[2 + c % 4 // 2] = st[2 + c % 4 // 2] + sacc[c]
                                if SCALAR:
                                    Ps[r0 + frag_row(c), frag_col(c) + 2 * t4] = T.Cast(DT, sacc[c])
                            for c in T.unroll(NO):
                                oacc[c] = oacc[c] * st[6 + c % 4 // 2]
                            if SCALAR:
                                T.tvm_storage_sync(SYNC)
                            # O += P V on this warp's 16 rows x Dv columns
                            if tensorize is not False:
                                for kk in T.unroll(BK // 16):
                                    # the S fragments of keys 16kk..16kk+15 (two n8 C tiles) are, register for
                                    # register, the A fragment of P's 16x16 tile: no trip through shared memory
                                    for r in T.unroll(8):
                                        fa[r] = T.Cast(DT, sacc[kk * 8 + r])
                                    for jn in T.unroll(DV // 16):
                                        # B = V [keys, Dv] row-major: .trans; lane l -> key l % 16, cols 8 (l // 16)
                                        ldm(True, fb, Vs, (kk * 16 + lane % 16) * DVP + jn * 16 + 8 * (lane // 16),
                                            w, lane, scr_addr)
                                        for h in T.unroll(2):
                                            mma(oacc, jn * 8 + 4 * h, 4 * h, fa, fb, w, lane, scr_a, scr_b)
                            else:
                                for c in T.unroll(NO):
                                    for j in T.serial(BK):
                                        oacc[c] = oacc[c] + f32(Ps[r0 + frag_row(c), j]) * f32(
                                            Vs[j, frag_col(c) + 2 * t4])
                        # row sums over the row's 4 lanes, then normalize and store
                        for rr in T.unroll(2):
                            quad_reduce(st, 2 + rr, False, w, lane, scr_f)
                            st[4 + rr] = st[2 + rr]
                            st[4 + rr] = T.if_then_else(st[4 + rr] > T.float32(0), T.float32(1) / st[4 + rr],
                                                        T.float32(0))
                        for c in T.unroll(NO):
                            grow: T.let[T.int32] = bx * BQ + r0 + frag_row(c)
                            if grow < ROWS:
                                O[b, hk * G + grow % G, grow // G, frag_col(c) + 2 * t4] = T.Cast(
                                    DT, oacc[c] * st[4 + c % 4 // 2])

    return flash_entry(cfg, (B, QL, KL), body, "flash_tc")


def tc_tile_or_reason(cfg, tile, splits: int, arch: CudaArch, v_from_k: bool = False) -> tuple[int, int] | str:
    """(BQ, BK) of the tensor-core kernel for `cfg`, capped by the CUDA-core kernel's `tile` (the tiling pass's /
    forced choice), or why `cfg` keeps the CUDA-core kernel."""
    reason = tc_reason(cfg, splits, v_from_k)
    return reason if reason is not None else tc_tile(tile.q_block, tile.kv_block, cfg, arch)


def tc_schedule(cfg, tc: tuple[int, int], target: dict) -> dict:
    """The kernel metadata's schedule entry for the tensor-core kernel with (BQ, BK) = `tc`."""
    bq, bk = tc
    return {"q_block": bq, "kv_block": bk, "warps": bq // 16, "threads": 2 * bq, "splits": 1,
            "arch": target["arch"], "tensor_cores": True,
            "shared_bytes": tc_shared_bytes(bq, bk, cfg.head_dim, cfg.v_head_dim, cfg.dtype),
            "registers_estimate": tc_registers(bk, cfg.v_head_dim)}
