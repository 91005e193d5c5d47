"""The entry PrimFunc of a cpu attention kernel: (q, k, v[, mask | bias table], out) around the kernel's body
macro, shared by the prefill and decode kernels (their signatures are the same; only the bodies differ)."""
from __future__ import annotations

from tvm.script import tirx as T


def attention_entry(cfg, body, B, QL, KL):
    """The PrimFunc named "attention" that binds the kernel arguments for `cfg` (a SizedConfig) and runs
    `body(q, k, v, M, o)`: M is the (1, Hq, 1, buckets) bias table (mask_input "table"), the mask buffer of any
    broadcast batch/head extent (bool or additive masks), or None. B, QL, KL: the sizes (ints or size vars)."""
    HQ, HKV, D, DV, DT = cfg.q_heads, cfg.kv_heads, cfg.head_dim, cfg.v_head_dim, cfg.dtype
    mask_dt = "uint8" if cfg.mask_input == "bool" else "float32"
    if cfg.mask_input == "table":   # a per-head bias table (score_mods: t5_bias), not a (.., Sq, Skv) mask
        NT = cfg.t5_bias[1]

        @T.prim_func
        def attention(q: T.Buffer((B, HQ, QL, D), DT), k: T.Buffer((B, HKV, KL, D), DT),
                      v: T.Buffer((B, HKV, KL, DV), DT), table: T.Buffer((1, HQ, 1, NT), "float32"),
                      o: T.Buffer((B, HQ, QL, DV), DT)):
            T.func_attr({"tir.noalias": True})
            body(q, k, v, table, o)
    elif cfg.mask_input != "none":
        @T.prim_func
        def attention(q: T.Buffer((B, HQ, QL, D), DT), k: T.Buffer((B, HKV, KL, D), DT),
                      v: T.Buffer((B, HKV, KL, DV), DT), mask: T.handle,
                      o: T.Buffer((B, HQ, QL, DV), DT)):
            T.func_attr({"tir.noalias": True})
            mb = T.int32()
            mh = T.int32()
            M = T.match_buffer(mask, (mb, mh, QL, KL), mask_dt)
            body(q, k, v, M, o)
    else:
        @T.prim_func
        def attention(q: T.Buffer((B, HQ, QL, D), DT), k: T.Buffer((B, HKV, KL, D), DT),
                      v: T.Buffer((B, HKV, KL, DV), DT), o: T.Buffer((B, HQ, QL, DV), DT)):
            T.func_attr({"tir.noalias": True})
            body(q, k, v, None, o)
    return attention.with_attr("global_symbol", "attention")
