"""Benchmark: position biases computed in the cpu flash kernel vs read as a dense (1, H, S, S) additive bias.

    TVM_NUM_THREADS=2 python benchmarks/position_bias.py [--seq 1024 2048] [--heads 8]

Per length, causal prefill, head_dim 64, batch 1, float32: the attncc kernel with no bias, with ALiBi computed
in-kernel (slopes in closed form), with T5's bucketed bias computed in-kernel from the (H, 32) table, and with the
same bias materialized as a dense additive mask (what targets without Capabilities.kernel_score_mods run), plus
torch SDPA with the dense bias in the same process (the peer). Times: best of 3 TVM time_evaluator means.
Also prints the bias bytes each form reads.
"""
from __future__ import annotations

import argparse

import torch

from attncc.backends.core.attention_config import AttentionKernelConfig
from attncc.backends.cpu.attention import build_attention_kernel


def _kernel_ms(cfg: AttentionKernelConfig, q, k, v, mask) -> float:
    kern = build_attention_kernel(cfg)
    args, _ = kern.prepare(q, k, v, mask)
    return min(kern.time(*args) for _ in range(3)) * 1e3


def _torch_ms(q, k, v, bias) -> float:
    import time
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--heads", type=int, default=8)
    a = ap.parse_args()
    H = a.heads
    for S in a.seq:
        base = dict(batch=1, q_heads=H, kv_heads=H, q_len=S, kv_len=S, head_dim=64, v_head_dim=64, scale=0.125,
                    causal=True)
        q, k, v = (torch.randn(1, H, S, 64) for _ in range(3))
        dense = torch.randn(1, H, S, S)
        table = torch.randn(1, H, 1, 32)
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        rows = [("no bias", _kernel_ms(AttentionKernelConfig(**base), q, k, v, None), 0),
                ("alibi in-kernel", _kernel_ms(AttentionKernelConfig(**base, alibi=8.0), q, k, v, None), 0),
                ("t5 in-kernel", _kernel_ms(AttentionKernelConfig(**base, mask_input="table", t5_bias=(False, 32, 128)),
                                            q, k, v, table), H * 32 * 4),
                ("dense additive bias", _kernel_ms(AttentionKernelConfig(**base, mask_input="additive"), q, k, v, dense),
                 H * S * S * 4),
                ("torch sdpa + dense bias", _torch_ms(q, k, v, dense.masked_fill(~causal, float("-inf"))), H * S * S * 4)]
        ref = rows[3][1]
        print(f"S={S} H={H}")
        for name, ms, nbytes in rows:
            print(f"  {name:26s} {ms:8.2f} ms   x{ref / ms:5.2f} vs dense-bias kernel   bias read {nbytes / 2**20:8.2f} MiB")


if __name__ == "__main__":
    main()
