"""Paper figures reproduced from the counting formulas (not constants) and conservation laws."""
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import pytest

from attncc.cost_models import (ATTENTION_COST_RULES, attention_cost, attention_tile_footprint, get_hardware,
                                matmul_cost, visible_pairs)
from attncc.cost_models.flash_io import flash_attention_hbm_bytes, flash_block_sizes, standard_attention_hbm_bytes
from attncc.ir.ops.attention import Tiling
from attncc.ir.ops.attention_features import MLA as _MLA
from attncc.ir.ops.attention_features import MTLA, Grouped
from attncc.ir.ops.attention_features import HiLo as _HiLo
from attncc.ir.ops.attention_features import MoH as _MoH
from attncc.ir.ops.attention_spec import AttentionSpec, Feature, MaskSpec


# the real feature classes (ir/ops/attention_features), not stand-ins: a renamed or re-shaped field breaks here
MoH = partial(_MoH, top_k=4, shared_heads=2)
HiLo = partial(_HiLo, image_size=(32, 32), window=(2, 2), local_heads=4)
MLA = partial(_MLA, latent_dim=512, rope_dim=64, absorbed=True)


DSV3_MHA = AttentionSpec(128, 128, 128)                     # DeepSeek-V3 dims without MLA: 128 heads x 128
DSV3_MLA = AttentionSpec(128, 1, 192, v_head_dim=128, kv_source=MLA())  # q = 128 nope + 64 rope; one shared latent


def test_decode_intensity_mla_absorbed_vs_mha():
    mla = attention_cost(DSV3_MLA, 64, 1, 4096, "bfloat16", None, "h100")
    mha = attention_cost(DSV3_MHA, 64, 1, 4096, "bfloat16", None, "h100")
    h, r, rope = 128, 512, 64
    assert mla.intensity_per_kv_byte == pytest.approx(2 * h * (2 * r + rope) / (2 * (r + rope)), rel=1e-3)
    assert mla.intensity_per_kv_byte == pytest.approx(242, rel=0.01)
    assert mha.intensity_per_kv_byte == pytest.approx(1.0, rel=1e-6)
    assert mla.intensity_per_kv_byte / mha.intensity_per_kv_byte > 100
    assert mha.bound == "memory"


def test_gqa_and_mqa_decode_intensity_scale_with_group():
    for kv, want in ((8, 16), (1, 128)):
        c = attention_cost(AttentionSpec(128, kv, 128), 4, 1, 2048, "bfloat16", None, "h100")
        assert c.intensity_per_kv_byte == pytest.approx(want, rel=1e-6)


def test_kv_cache_per_token_mla_vs_mha():
    assert attention_cost(DSV3_MLA, 1, 1, 16, "bfloat16", None, "h100").kv_bytes_per_token == 1152
    assert attention_cost(DSV3_MHA, 1, 1, 16, "bfloat16", None, "h100").kv_bytes_per_token == 65536


def test_mla_naive_reads_more_than_absorbed():
    naive = AttentionSpec(128, 1, 192, v_head_dim=128, kv_source=MLA(absorbed=False))
    a = attention_cost(DSV3_MLA, 8, 1, 4096, "bfloat16", None, "h100")
    n = attention_cost(naive, 8, 1, 4096, "bfloat16", None, "h100")
    assert n.kv_bytes_per_token == a.kv_bytes_per_token == 1152
    assert n.main_bytes > 10 * a.main_bytes and n.time_s > a.time_s


def test_flashattention_gpt2_medium_hbm_traffic():
    a100 = get_hardware("a100-80gb")
    assert flash_block_sizes(a100.on_chip_bytes, 64, "float16") == (64, 384)
    std = standard_attention_hbm_bytes(64, 16, 1024, 64, "float16", score_passes=2)  # causal mask + dropout
    fa = flash_attention_hbm_bytes(64, 16, 1024, 64, "float16", a100)
    assert std / 1e9 == pytest.approx(40.3, rel=0.10)
    assert fa / 1e9 == pytest.approx(4.4, rel=0.10)
    assert std / fa == pytest.approx(40.3 / 4.4, rel=0.15)


def test_inference_kv_reread_follows_query_blocks():
    spec = AttentionSpec(16, 16, 64)
    small = attention_cost(spec, 1, 1024, 1024, "float16", Tiling(q_block=64, kv_block=128), "a100")
    big = attention_cost(spec, 1, 1024, 1024, "float16", Tiling(q_block=256, kv_block=64), "a100")
    kv_once = 16 * 1024 * 128 * 2
    assert small.kv_read_bytes == 16 * kv_once and big.kv_read_bytes == 4 * kv_once


def test_tile_footprint_formula_and_spill_note():
    spec = AttentionSpec(8, 8, 64)
    t = Tiling(q_block=128, kv_block=256)
    assert attention_tile_footprint(spec, t, "float32") == (128 * 128 + 256 * 128 + 128 * 256) * 4
    c = attention_cost(spec, 1, 1024, 1024, "float32", Tiling(q_block=1024, kv_block=1024), "host-cpu")
    assert not c.details["tile_fits"] and any("spills" in n for n in c.notes)


def test_plain_mha_flops_conservation():
    c = attention_cost(AttentionSpec(12, 12, 64), 2, 300, 500, "float32", None, "host-cpu")
    assert c.flops == 2 * 4 * 300 * 500 * 64 * 12


def test_kv_bytes_scale_with_kv_heads():
    vals = [attention_cost(AttentionSpec(32, kv, 128), 1, 1, 4096, "float16", None, "h100") for kv in (32, 8, 1)]
    assert vals[0].kv_read_bytes / vals[1].kv_read_bytes == pytest.approx(4)
    assert vals[1].kv_read_bytes / vals[2].kv_read_bytes == pytest.approx(8)
    assert [v.kv_bytes_per_token for v in vals] == [32 * 256 * 2, 8 * 256 * 2, 256 * 2]


def test_grouped_attention_divides_score_flops_by_g():
    plain = attention_cost(AttentionSpec(4, 4, 64), 1, 1024, 1024, "float32", None, "host-cpu")
    for g in (2, 4, 8):
        grp = attention_cost(AttentionSpec(4, 4, 64, kv_source=Grouped(g)), 1, 1024, 1024, "float32", None, "host-cpu")
        assert grp.flops == pytest.approx(plain.flops / g)


def test_windowed_and_causal_pairs():
    assert visible_pairs(MaskSpec(), 100, 100) == 100 * 100
    assert visible_pairs(MaskSpec(causal=True), 100, 100) == 100 * 101 // 2
    w = MaskSpec(causal=True, window_left=16)
    assert visible_pairs(w, 1000, 1000) == sum(min(i + 1, 17) for i in range(1000))
    assert visible_pairs(MaskSpec(causal=True, alignment="bottom_right", window_left=511), 1, 8192) == 512  # min(L, w)


def test_mtla_divides_cache_and_reads_by_stride():
    causal = MaskSpec(causal=True, alignment="bottom_right")   # MTLA's stride-aware mask is causal
    base = attention_cost(AttentionSpec(8, 8, 64, mask=causal), 1, 1, 4096, "float16", None, "h100")
    m = attention_cost(AttentionSpec(8, 8, 64, mask=causal, kv_source=MTLA(4)), 1, 1, 4096, "float16", None, "h100")
    assert m.kv_bytes_per_token == pytest.approx(base.kv_bytes_per_token / 4)
    assert m.kv_read_bytes == pytest.approx(base.kv_read_bytes / 4)


def test_moh_and_hilo_rules_through_registry():
    assert {"mla", "mtla", "grouped", "hilo", "moh", "chai"} <= set(ATTENTION_COST_RULES)
    plain = attention_cost(AttentionSpec(16, 16, 64), 1, 1024, 1024, "float32", None, "host-cpu")
    moh = attention_cost(AttentionSpec(16, 16, 64, head_mixing=MoH()), 1, 1024, 1024, "float32", None, "host-cpu")
    assert moh.details["core_flops"] == pytest.approx(plain.flops * 6 / 16)
    hilo = attention_cost(AttentionSpec(8, 8, 64, kv_source=HiLo()), 1, 1024, 1024, "float32", None, "host-cpu")
    # 4 local heads see 2x2 windows, 4 global heads see 1024/4 pooled keys
    assert hilo.details["pairs"] == pytest.approx(4 * 1024 * 4 + 4 * 1024 * 256)


def test_matmul_flops_and_compulsory_bytes():
    c = matmul_cost(256, 128, 64, 3, "float32", "host-cpu")
    assert c.flops == 2 * 256 * 128 * 64 * 3
    assert c.main_bytes >= 3 * (256 * 64 + 64 * 128 + 256 * 128) * 4


def test_unknown_feature_is_noted_not_silently_priced():
    @dataclass(frozen=True)
    class Mystery(Feature):
        kind: ClassVar[str] = "mystery_kind"
    c = attention_cost(AttentionSpec(4, 4, 32, score_mods=(Mystery(),)), 1, 64, 64, "float32", None, "host-cpu")
    assert any("mystery_kind" in n for n in c.notes)
