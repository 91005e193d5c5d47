"""Every variant feature survives the spec dict/JSON round trip and the IR text printer/parser."""
import json

import pytest

from attncc.ir import Graph
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec
from attncc.ir.ops import attention_features as F
from attncc.ir.printer import parse_ir, print_ir

SPECS = [
    AttentionSpec(4, 1, 12, v_head_dim=6, mask=MaskSpec(causal=True, alignment="bottom_right"), kv_source=F.MLA(16, 4, True)),
    AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True), kv_source=F.MTLA(3)),
    AttentionSpec(4, 4, 8, kv_source=F.GlobalQuery(2, 5)),
    AttentionSpec(4, 4, 8, kv_source=F.Grouped(3)),
    AttentionSpec(4, 4, 8, kv_source=F.Strided(2)),
    AttentionSpec(4, 4, 8, kv_source=F.HiLo((3, 4), (1, 2), 2)),
    AttentionSpec(4, 4, 8, kv_source=F.ConvShare((4, 5), (2, 2))),
    AttentionSpec(4, 2, 8, mask=MaskSpec(causal=True), kv_source=F.LinearAttn("gated_delta")),
    AttentionSpec(4, 4, 8, head_mixing=F.MoH(2, 1)),
    AttentionSpec(4, 2, 8, head_mixing=F.KnockingHeads(("q", "v"))),
    AttentionSpec(4, 4, 8, head_mixing=F.CHAI((0, 1, 0, 1))),
    AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True), head_mixing=F.CHAI((0, 1, 0, 2), online_probe=5)),
    AttentionSpec(4, 4, 8, score_mods=(F.HeadBlocks((2, 4, 0, 8), True, True),)),
    AttentionSpec(4, 4, 8, mask=MaskSpec(causal=True),
                  score_mods=(F.MultiWindow((2, None, 4, None)), F.BlockedLocal(4, 1), F.Uniform(0.25))),
    AttentionSpec(4, 4, 8, score_mods=(F.TopkSparse(3), F.BlockSparse(4))),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.variant + "-" + "-".join(f.kind for f in s.features_list()))
def test_spec_round_trips(spec):
    assert AttentionSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_printer_round_trip_of_an_mla_graph():
    spec = SPECS[0]
    g = Graph("mla")
    ins = [g.add_input("q", "float32", (2, 4, 5, 12)), g.add_input("cache", "float32", (2, 1, 5, 20)),
           g.add_input("c", "float32", (2, 1, 5, 16)), g.add_input("w_uk", "float32", (16, 4, 8)),
           g.add_input("w_uv", "float32", (16, 4, 6))]
    g.set_outputs([g.add1(Attention(spec=spec), ins, name="att")])
    text = print_ir(g)
    assert print_ir(parse_ir(text)) == text
    assert parse_ir(text).attention_ops()[0].op.spec == spec
