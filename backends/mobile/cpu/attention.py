"""mobile-cpu attention: the core's generic TE attention (backends/core/te_attention.py) under a NEON
row-streaming schedule of this target's own.

Schedule: (batch, head, block of q_block query rows) is one parallel task; inside it each query row
computes its kv_len scores, row max, exp and sum, and the P @ V row, so the live state of a row is one
score row (kv_len fp32: 16 KB at 4096 keys, inside a 64 KB L1d) and a Dv accumulator, never the
(Sq, Skv) matrix. P @ V runs key-outer / value-column-inner with the columns in NEON vectors
(contiguous V rows); masks, causal/window bounds, softcap and GQA come from the core's definition.
Batch, q_len and kv_len are TIR variables when `cfg.dynamic` names them (one build serves every length).
This is a first step, not a hand-written flash kernel: the key loop is not blocked (kv_block is recorded,
not used) and the QK dot products are scalar-reduced over head_dim.
"""
from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, te, tirx

from ...core.attention_config import AttentionKernelConfig
from ...core.symbolic import static_int
from ...core.te_attention import attention_compute
from .schedules import neon_vectorize
from .target import fp32_lanes


MASK_VIEW = "mask_full"   # the (B, Hq, Sq, Skv) broadcast read of the mask argument, inlined


def _has_block(sch: s_tir.Schedule, name: str) -> bool:
    try:
        sch.get_sblock(name)
        return True
    except Exception:  # noqa: BLE001 - TVM raises its own error type for an unknown block
        return False


@dataclass(frozen=True)
class _Mask:
    input: str
    alignment: str
    window_left: int | None
    effective_window_right: int | None


@dataclass(frozen=True)
class _Spec:
    """The slice of an IR AttentionSpec that `attention_compute` reads, rebuilt from a kernel config."""
    mask: _Mask
    scale: float
    softcap: float | None
    softcap_order: str = "before_mask"   # the core never sends softcap-after-additive-mask to a kernel
    score_mods: tuple = ()               # mobile-cpu keeps no score mod in its kernel (Capabilities.kernel_score_mods)


def _spec(cfg: AttentionKernelConfig) -> _Spec:
    return _Spec(_Mask(cfg.mask_input, cfg.alignment, cfg.eff_window_left, cfg.eff_window_right),
                 float(cfg.scale), cfg.softcap)


def _dims(cfg: AttentionKernelConfig):
    """(batch, q_len, kv_len): ints, or int32 TIR variables for the dims in cfg.dynamic."""
    return tuple(tirx.Var(d, "int32") if d in cfg.dynamic else getattr(cfg, d) for d in ("batch", "q_len", "kv_len"))


def rows_per_task(cfg: AttentionKernelConfig, cores: int) -> int:
    """Query rows per parallel task: the recorded q_block, else enough tasks for every core (multiples of 4)."""
    if cfg.q_block:
        return min(cfg.q_block, cfg.q_len)
    per_head = max(1, (cfg.batch * cfg.q_heads * cfg.q_len) // max(1, 4 * cores))
    rows = min(cfg.q_len, 64, max(1, per_head))
    return rows if rows < fp32_lanes() else rows // fp32_lanes() * fp32_lanes()


def define(cfg: AttentionKernelConfig):
    """The TE tensors (q, k, v[, mask], out) of the attention for `cfg`."""
    batch, q_len, kv_len = _dims(cfg)
    q = te.placeholder((batch, cfg.q_heads, q_len, cfg.head_dim), cfg.dtype, name="q")
    k = te.placeholder((batch, cfg.kv_heads, kv_len, cfg.head_dim), cfg.dtype, name="k")
    v = te.placeholder((batch, cfg.kv_heads, kv_len, cfg.v_head_dim), cfg.dtype, name="v")
    mask = full = None
    if cfg.mask_input != "none":
        # the core passes the mask as (1|B, 1|Hq, Sq, Skv) (backends/core/attention.py _mask_arg): its batch
        # and head extents are TIR variables, and min(b, mb - 1) reads row 0 of a broadcast dim, b otherwise
        mb, mh = tirx.Var("mask_batch", "int32"), tirx.Var("mask_heads", "int32")
        mask = te.placeholder((mb, mh, q_len, kv_len), "uint8" if cfg.mask_input == "bool" else "float32",
                              name="mask")
        full = te.compute((batch, cfg.q_heads, q_len, kv_len),
                          lambda b, h, i, j: mask[tirx.min(b, mb - 1), tirx.min(h, mh - 1), i, j], name=MASK_VIEW)
    out = attention_compute(_spec(cfg), q, k, v, full, None, cfg.dtype, "out")
    return [t for t in (q, k, v, mask) if t is not None] + [out]


def schedule(sch: s_tir.Schedule, rows: int) -> None:
    """The row-streaming schedule described in the module docstring."""
    if _has_block(sch, MASK_VIEW):
        sch.compute_inline(sch.get_sblock(MASK_VIEW))   # the broadcast read happens inside the score loop
    sch.compute_inline(sch.get_sblock("scores"))
    out = sch.get_sblock("out")
    b, h, i, e = sch.get_loops(out)
    if static_int(sch.get(i).extent) is not None and rows > 1:
        i_out, i_row = sch.split(i, [None, rows])
    else:   # symbolic q_len (or one row per task): every row its own task
        i_out, i_row = i, None
    task = sch.fuse(b, h, i_out)
    row = i_row if i_row is not None else task
    for name in ("pv", "denom", "probs", "rowmax", "qk"):   # readers first: each producer lands before its reader
        sch.compute_at(sch.get_sblock(name), row)
    sch.parallel(task)
    pv = sch.get_sblock("pv")
    col, key = sch.get_loops(pv)[-2:]
    sch.reorder(key, col)                    # key-outer: one P value times a contiguous V row per step
    sch.set_scope(pv, 0, "local")            # the Dv accumulator row stays in registers
    neon_vectorize(sch, col)
    sch.decompose_reduction(pv, key)
    neon_vectorize(sch, sch.get_loops(out)[-1])


def attention_primfunc(cfg: AttentionKernelConfig, target: dict):
    """(PrimFunc over (q, k, v[, mask], out), metadata) for `cfg` on mobile-cpu."""
    tensors = define(cfg)
    rows = rows_per_task(cfg, int(target.get("num-cores", 4)))
    sch = s_tir.Schedule(te.create_prim_func(tensors))
    schedule(sch, rows)
    return sch.mod["main"], {"kind": "te-row-streaming", "schedule": {"rows_per_task": rows,
                                                                      "kv_block_recorded": cfg.kv_block}}
