"""Issue 23 item 4: cost rules read variant features through typed access (attention_rules.FeatureFields: a field
the feature does not declare is an error naming the rule and the field, tests/cost_models/test_cost_rule_registry.py),
and every variant case of tests/variants prices through its registered rule without one."""
from __future__ import annotations

import pytest

from attncc.cost_models import ATTENTION_COST_RULES, attention_cost
from attncc.ir.ops import AttentionSpec
from attncc.ir.ops.attention_features import MoH
from tests.variants.test_identities import CASES


def test_moh_balancing_router_is_priced_where_declared():
    """The balancing router's logits and gate softmaxes are counted only for routers="moh" with shared heads."""
    def vector_flops(moh):
        return attention_cost(AttentionSpec(8, 8, 64, head_mixing=moh), 1, 256, 256, "float32", None,
                              "host-cpu").vector_flops
    assert vector_flops(MoH(top_k=2, shared_heads=2, routers="moh")) > vector_flops(MoH(top_k=2, shared_heads=2))


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_variant_case_prices_with_declared_fields(name):
    spec, named, _ = CASES[name]()
    q, k = named["query"], named["key"]
    cost = attention_cost(spec, q.shape[0], q.shape[2], k.shape[2], "float32", None, "host-cpu")
    assert cost.time_s > 0
    assert all(f.kind in ATTENTION_COST_RULES for f in spec.features_list())
    assert not [n for n in cost.notes if n.startswith("no cost rule")]
