"""The cpu target's kernels for fitting the host cost model, built and made ready to time.

`attncc.calibration` (which times them and fits the efficiency factors) gets each kernel as a `KernelCase`: what
the cost model needs to price it (`job`) and a zero-argument `run` calling the compiled kernel on inputs prepared
once. The kernels, their schedules and TVM stay here, so calibration imports no backend internals and no TVM.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...ir.ops.attention import Tiling
from ...ir.ops.attention_spec import AttentionSpec, MaskSpec

__all__ = ["KernelCase", "PlanTiming", "attention_case", "matmul_case", "plan_cases", "tiny_case"]


@dataclass
class KernelCase:
    """One built kernel: `label` for logs, `job` for the cost model (("attention", spec, batch, q_len, kv_len,
    tiling) or ("matmul", m, n, k, tiling)) and `run` (one call of the kernel; the inputs are ready)."""

    label: str
    job: tuple
    run: Callable[[], None]


def _kernel_tiling(kern) -> Tiling:
    """The tiles the compiled kernel really uses (its schedule), as the cost model's Tiling."""
    cfg, s = kern.cfg, kern.schedule
    if kern.kind == "decode":
        return Tiling(q_block=cfg.group * cfg.q_len, kv_block=s.kv_block, num_splits=s.num_splits)
    return Tiling(q_block=s.q_block, kv_block=s.kv_block)


def attention_case(batch: int, q_heads: int, kv_heads: int, q_len: int, kv_len: int, head_dim: int,
                   v_head_dim: int | None = None, scale: float | None = None, causal: bool = False,
                   window_left: int | None = None, softcap: float | None = None,
                   rng: np.random.Generator | None = None) -> KernelCase:
    """The flash prefill (q_len > 8) or split-KV decode kernel of this attention problem (fp32, bhsd)."""
    from .attention import AttentionKernelConfig, build_attention_kernel

    rng = rng or np.random.default_rng(0)
    dv = v_head_dim or head_dim
    cfg = AttentionKernelConfig(batch, q_heads, kv_heads, q_len, kv_len, head_dim, dv,
                                scale if scale is not None else 1 / math.sqrt(head_dim), causal=causal,
                                window_left=window_left, softcap=softcap)
    kern = build_attention_kernel(cfg)
    q = rng.standard_normal((batch, q_heads, q_len, head_dim), dtype=np.float32)
    k = rng.standard_normal((batch, kv_heads, kv_len, head_dim), dtype=np.float32)
    v = rng.standard_normal((batch, kv_heads, kv_len, dv), dtype=np.float32)
    args, _ = kern.prepare(q, k, v)          # aligned copies made once, outside the timing
    fn = kern.mod["attention"]
    mask = MaskSpec(causal=cfg.causal, alignment=cfg.alignment, window_left=cfg.window_left,
                    window_right=cfg.window_right)
    spec = AttentionSpec(cfg.q_heads, cfg.kv_heads, cfg.head_dim, cfg.v_head_dim, scale=cfg.scale,
                         softcap=cfg.softcap, mask=mask)
    label = (f"attn-{kern.kind} B{batch} H{q_heads}/{kv_heads} q{q_len} kv{kv_len} d{head_dim}"
             + (" causal" if causal and q_len > 1 else "") + (f" win{window_left}" if window_left else "")
             + (" softcap" if softcap else ""))
    return KernelCase(label, ("attention", spec, batch, q_len, kv_len, _kernel_tiling(kern)), lambda: fn(*args))


def matmul_case(m: int, n: int, k: int, packed: bool, rng: np.random.Generator | None = None) -> KernelCase:
    """The scheduled (1, m, k) x (k, n) matmul: `packed` = a Linear's weight packed into panels at load time
    (not timed), else an activation product. The result is checked against numpy once."""
    import tvm
    from tvm import te

    from .attention import default_target
    from .matmul import matmul_compute, pack_weight, packed_shape, schedule_matmul

    rng = rng or np.random.default_rng(0)
    a_np = rng.standard_normal((1, m, k), dtype=np.float32)
    w_np = rng.standard_normal((k, n), dtype=np.float32)
    a = te.placeholder((1, m, k), "float32", name="A")
    b = te.placeholder(packed_shape(k, n) if packed else (1, k, n), "float32", name="B")
    acc = matmul_compute(a, b, n, packed=packed, name="acc")
    out = te.compute(acc.shape, lambda *i: acc(*i), name="C")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b, out]))
    built = schedule_matmul(sch, "C", "acc")   # (rows, columns) of the register tile it built
    fn = tvm.compile(sch.mod, target=default_target())["main"]
    b_host = pack_weight(w_np) if packed else w_np[None]   # weight packing: load time, not timed
    ta, tb = tvm.runtime.tensor(a_np), tvm.runtime.tensor(b_host)
    rows = int(out.shape[1])   # the accumulator may pad M to whole register tiles: its first m rows are the result
    tc = tvm.runtime.tensor(np.empty((1, rows, n), np.float32))
    fn(ta, tb, tc)
    np.testing.assert_allclose(tc.numpy()[0, :m], a_np[0] @ w_np, rtol=1e-3, atol=1e-2)
    tiles = Tiling(q_block=built[0], kv_block=built[1])
    label = f"matmul {'linear(packed W)' if packed else 'unpacked'} {m}x{n}x{k}"
    return KernelCase(label, ("matmul", m, n, k, tiles), lambda: fn(ta, tb, tc))


def tiny_case(kind: str) -> KernelCase:
    """A kernel doing almost nothing, scheduled as the plan's kernels of that class are: its time is the fixed
    cost of one call. kind: "elementwise" (an add over 16 floats, the injective/rows schedule's parallel loop)
    or "layout" (a 4x4 transpose, the injective schedule)."""
    import tvm
    from tvm import te

    from .attention import default_target
    from .schedules import schedule_injective

    shape = (1, 16) if kind == "elementwise" else (4, 4)
    a = te.placeholder(shape, "float32", name="A")
    if kind == "elementwise":
        out = te.compute(shape, lambda i, j: a[i, j] + a[i, j], name="out")
    elif kind == "layout":
        out = te.compute((4, 4), lambda i, j: a[j, i], name="out")
    else:
        raise ValueError(f"tiny_case: unknown kind {kind!r}; supported: 'elementwise', 'layout'")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, out]))
    schedule_injective(sch, "out")
    fn = tvm.compile(sch.mod, target=default_target())["main"]
    x = np.arange(16, dtype=np.float32).reshape(shape)
    ta, tb = tvm.runtime.tensor(x), tvm.runtime.tensor(np.empty(shape, np.float32))
    fn(ta, tb)
    np.testing.assert_allclose(tb.numpy(), x + x if kind == "elementwise" else x.T)
    return KernelCase(f"tiny {kind}", (kind, 16), lambda: fn(ta, tb))



@dataclass
class PlanTiming:
    """The kernels of one built plan, timed as the plan runs them: `run()` calls the whole plan once (steps back to
    back, as a model call does) and returns each step's seconds; `cases[i].step` says which step a case is."""

    label: str
    cases: list
    run: Callable[[], list]


def plan_cases(runner, inputs: list, rows: list, label: str) -> PlanTiming:
    """Every kernel of a built plan (`runner`: the cpu build's PlanRunner; `rows`: its cost report's kernel rows, one
    per launch in plan order) with job = ("row", the row's OpCost, its kernel class): norms, elementwise groups,
    RoPE, layout copies, Linear and attention, timed inside whole plan calls on `inputs` (warm code and thread pool,
    each kernel's inputs just written by the kernel before it). Steps and rows that do not pair up raise."""
    steps = runner.steps
    if len(steps) != len(rows):
        raise ValueError(f"{label}: {len(steps)} plan steps but {len(rows)} report rows; the report must price "
                         "exactly the kernels the plan launches")
    cases = []
    for i, (step, row) in enumerate(zip(steps, rows)):
        if step["kind"] not in ("call", "attention"):
            continue   # numpy reference steps are not generated kernels
        cost = row.cost
        kind = cost.details.get("kernel") or cost.details.get("efficiency", {}).get("kernel_class", "elementwise")
        case = KernelCase(f"{label} #{i} {row.kernel_class or kind} {row.name}"[:70], ("row", cost, kind), lambda: None)
        case.step = i
        cases.append(case)

    def run() -> list:
        times: list = []
        runner.run(inputs, times)
        return times

    return PlanTiming(label, cases, run)
