"""Benchmark: attncc CPU attention kernels (TVM TIR) vs torch SDPA, same process.

    TVM_NUM_THREADS=2 python benchmarks/cpu_attention.py [--quick] [--threads N]

Prints per case: attncc ms, torch ms, ratio (torch time / attncc time, >1 = attncc
faster), GFLOP/s (or GB/s for decode), then the geometric-mean ratio.
Extra cases (e.g. MLA decode, a whole transformer block) plug in through
``register_case``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

CASES: list["Case"] = []


@dataclass
class Case:
    name: str
    setup: Callable[[], tuple]    # -> (attncc_fn, torch_fn, work) ; work = ("flop", n) or ("byte", n)
    note: str = ""
    quick: bool = True


def register_case(name: str, quick: bool = True, note: str = ""):
    """Decorator hook: ``@register_case("MLA decode")`` on a function returning
    (attncc_callable, torch_callable, ("flop"|"byte", amount))."""
    def deco(fn):
        CASES.append(Case(name, fn, note, quick))
        return fn
    return deco


def timeit_pair(fa, fb, min_time=0.2, rounds=9):
    """Interleaved timing (robust to noisy neighbours): min over rounds of the mean per call."""
    fa(); fb()
    def one(f):
        t0 = time.perf_counter(); f(); dt = time.perf_counter() - t0
        n = max(1, int(min_time / max(dt, 1e-6) / rounds))
        t0 = time.perf_counter()
        for _ in range(n):
            f()
        return (time.perf_counter() - t0) / n
    ta, tb = [], []
    for _ in range(rounds):
        ta.append(one(fa)); tb.append(one(fb))
    return min(ta), min(tb)


# --generic: every flash case compares the shape-generic kernel (batch/q_len/kv_len as run-time variables, what a
# model with dynamic dims runs) against the static kernel for the same shape instead of against torch
GENERIC = False


def _pair(cfg, q, k, v, torch_fn, mask=None):
    """(attncc fn, other fn): the kernel vs torch, or with GENERIC the shape-generic vs the static kernel."""
    import dataclasses

    static, _ = _kernel_fn(cfg, q, k, v, mask)
    if not GENERIC:
        return static, torch_fn
    dyn = ("kv_len",) if cfg.q_len == 1 else ("batch", "q_len", "kv_len")
    generic, _ = _kernel_fn(dataclasses.replace(cfg, dynamic=dyn), q, k, v, mask)
    return generic, static


def _kernel_fn(cfg, q, k, v, mask=None):
    from attncc.backends.cpu.attention import build_attention_kernel
    kern = build_attention_kernel(cfg)
    args, out = kern.prepare(q, k, v, mask)
    fn = kern._fn
    return (lambda: fn(*args)), kern


def _sdpa_case(B, HQ, HKV, N, D, causal=False, window=None, dtype="float32"):
    import torch
    import torch.nn.functional as F
    from attncc.backends.cpu.attention import AttentionKernelConfig
    tdt = getattr(torch, dtype)
    q = torch.randn(B, HQ, N, D, dtype=tdt)
    k = torch.randn(B, HKV, N, D, dtype=tdt)
    v = torch.randn(B, HKV, N, D, dtype=tdt)
    cfg = AttentionKernelConfig(B, HQ, HKV, N, N, D, D, scale=D ** -0.5, dtype=dtype,
                                causal=causal or window is not None,
                                window_left=window)
    if window is not None:
        i = torch.arange(N)[:, None]
        j = torch.arange(N)[None, :]
        dense = (j <= i) & (j >= i - window)
        fb = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=dense)
    elif HKV != HQ:
        fb = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    else:
        fb = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    fa, fb = _pair(cfg, q, k, v, fb)
    return fa, fb, ("flop", cfg.flops())


@register_case("MHA B1 H8 N1024 D64")
def _mha():
    return _sdpa_case(1, 8, 8, 1024, 64)


@register_case("MHA B1 H8 N1024 D64 causal")
def _mha_causal():
    return _sdpa_case(1, 8, 8, 1024, 64, causal=True)


@register_case("GQA 32q/8kv N2048 D128 causal")
def _gqa():
    return _sdpa_case(1, 32, 8, 2048, 128, causal=True)


@register_case("MQA 16q/1kv N1024 D64")
def _mqa():
    return _sdpa_case(1, 16, 1, 1024, 64)


@register_case("SWA W256 H8 N4096 D64 (torch: dense mask)")
def _swa():
    return _sdpa_case(1, 8, 8, 4096, 64, window=256)


def copy_bandwidth(nbytes=256 << 20) -> tuple[float, float]:
    """(numpy, torch) large-copy bandwidth in GB/s, counting read + write bytes
    (ANCHORS.md's "numpy large copy, read+write" figure)."""
    import numpy as np
    import torch
    src = torch.empty(nbytes // 4, dtype=torch.float32).normal_()
    dst = torch.empty_like(src)
    dst.copy_(src)
    t_torch = min(_time1(lambda: dst.copy_(src)) for _ in range(7))
    a, b = src.numpy(), dst.numpy()
    np.copyto(b, a)
    t_np = min(_time1(lambda: np.copyto(b, a)) for _ in range(7))
    return 2 * nbytes / t_np / 1e9, 2 * nbytes / t_torch / 1e9


def _time1(f):
    t0 = time.perf_counter(); f(); return time.perf_counter() - t0


@register_case("GQA decode 32q/8kv KV8192 D128")
def _decode():
    import torch
    import torch.nn.functional as F
    from attncc.backends.cpu.attention import AttentionKernelConfig
    B, HQ, HKV, KV, D = 1, 32, 8, 8192, 128
    q = torch.randn(B, HQ, 1, D)
    k = torch.randn(B, HKV, KV, D)
    v = torch.randn(B, HKV, KV, D)
    cfg = AttentionKernelConfig(B, HQ, HKV, 1, KV, D, D, scale=D ** -0.5)
    fa, fb = _pair(cfg, q, k, v, lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
    nbytes = (k.numel() + v.numel() + 2 * q.numel()) * 4
    return fa, fb, ("byte", nbytes)


@register_case("MLA decode absorbed 128h 512+64 KV4096")
def _mla_decode():
    """DeepSeek-V3 MLA decode step (absorbed): one IR Attention op with kv_source=mla compiled by attncc (the
    cpu backend decomposes it into q·W_uk per head, the flash decode kernel with Dqk 576 / Dv 512 / 1 kv head,
    and ·W_uv) vs the same absorbed math in torch eager. Bytes = the minimum traffic: latent+rope cache and
    both up-projection weights (fp32)."""
    import numpy as np
    import torch
    import attncc
    from attncc.ir import Graph
    from attncc.ir.ops import Attention, AttentionSpec, MaskSpec
    from attncc.ir.ops.attention_features import MLA
    B, H, L, R, NOPE, DV, KV = 1, 128, 512, 64, 128, 128, 4096
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, H, 1, NOPE + R, generator=g)
    cache = torch.randn(B, 1, KV, L + R, generator=g)
    latent = cache[..., :L].contiguous()                 # attncc's value input (the spec's c_kv)
    w_uk = torch.randn(L, H, NOPE, generator=g) * L ** -0.5
    w_uv = torch.randn(L, H, DV, generator=g) * L ** -0.5
    spec = AttentionSpec(H, 1, NOPE + R, v_head_dim=DV, mask=MaskSpec(causal=True, alignment="bottom_right"),
                         kv_source=MLA(L, R, absorbed=True))
    graph = Graph("mla_decode")
    ins = [graph.add_input(n, "float32", tuple(t.shape)) for n, t in (("q", q), ("cache", cache), ("latent", latent))]
    ws = [graph.add_constant(w.numpy(), n) for n, w in (("w_uk", w_uk), ("w_uv", w_uv))]
    graph.set_outputs([graph.add1(Attention(spec=spec), ins + ws, name="mla")])
    cm = attncc.compile(graph, target="cpu", passes="dce")
    assert not [n for n in cm.executable.notes if "numpy reference" in n], cm.executable.notes
    w_uk_h = w_uk.permute(1, 2, 0).contiguous()          # (H, nope, L): weights laid out once, as attncc does
    w_uv_h = w_uv.permute(1, 0, 2).contiguous()          # (H, L, Dv)
    scale = spec.scale

    def torch_absorbed():
        q_lat = q[..., :NOPE] @ w_uk_h                                        # (B, H, 1, L)
        s = torch.cat([q_lat, q[..., NOPE:]], -1) @ cache.transpose(-1, -2) * scale
        return (torch.softmax(s, -1) @ cache[..., :L]) @ w_uv_h              # (B, H, 1, Dv)

    args = [q, cache, latent]
    np.testing.assert_allclose(cm(*args).numpy(), torch_absorbed().numpy(), rtol=1e-3, atol=1e-4)
    nbytes = 4 * (cache.numel() + w_uk.numel() + w_uv.numel())
    # 128 heads share each cache row: ~1.1 GFLOP per step, so this decode is compute-bound, not bandwidth-bound
    flops = 2 * B * H * KV * (L + R + L) + 2 * B * H * L * (NOPE + DV)
    return (lambda: cm(*args)), torch_absorbed, ("byte", nbytes, flops)


# --------------------------------------------------------------- future cases
# Hook for cases that need pieces other engineers are building (attncc.ir / compiler):
#
#   @register_case("whole transformer block", quick=False)
#   def _block(): ...
#
# ``add_case(name, setup)`` does the same without a decorator.
def add_case(name: str, setup: Callable[[], tuple], quick: bool = True, note: str = "") -> None:
    CASES.append(Case(name, setup, note, quick))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=int(os.environ.get("TVM_NUM_THREADS", "2")))
    ap.add_argument("--only", default=None, help="substring filter on case names")
    ap.add_argument("--all", action="store_true", help="include non-quick cases")
    ap.add_argument("--generic", action="store_true", help="compare shape-generic kernels with static ones "
                    "(the 'torch' columns then hold the static kernel)")
    args = ap.parse_args(argv)
    global GENERIC
    GENERIC = args.generic
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    import torch
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} torch={torch.__version__}")
    bw, bw_torch = copy_bandwidth()
    print(f"copy bandwidth (read+write bytes): numpy {bw:.1f} GB/s, torch {bw_torch:.1f} GB/s;"
          f" decode % is vs numpy's")
    hdr = f"{'case':44s} {'attncc ms':>10s} {'torch ms':>10s} {'ratio':>7s} {'attncc':>14s} {'torch':>14s}"
    print(hdr)
    print("-" * len(hdr))
    ratios = []
    for case in CASES:
        if args.only and args.only not in case.name:
            continue
        if not (case.quick or args.all):
            continue
        fa, fb, (unit, amount, *flops) = case.setup()   # a byte case may add its FLOPs (compute-bound decode)
        ta, tb = timeit_pair(fa, fb)
        ratio = tb / ta
        ratios.append(ratio)
        if unit == "flop":
            ra, rb = f"{amount / ta / 1e9:8.1f} GFLOP/s", f"{amount / tb / 1e9:8.1f} GFLOP/s"
        else:
            ra = f"{amount / ta / 1e9:6.1f} GB/s ({100 * amount / ta / 1e9 / bw:3.0f}%)"
            rb = f"{amount / tb / 1e9:6.1f} GB/s"
        print(f"{case.name:44s} {ta * 1e3:10.3f} {tb * 1e3:10.3f} {ratio:7.2f} {ra:>14s} {rb:>14s}"
              + (f"  ({flops[0] / ta / 1e9:.1f} vs {flops[0] / tb / 1e9:.1f} GFLOP/s)" if flops else ""))
        sys.stdout.flush()
    if ratios:
        gm = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"geometric-mean ratio (torch time / attncc time): {gm:.2f}")


if __name__ == "__main__":
    main()
