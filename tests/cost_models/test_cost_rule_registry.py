"""Issue 23 item 4: the cost rules are one explicit registry (cost_models/rules.py): every rule is reachable from
an IR op or attention feature kind, the tables do not grow when some other module is imported, and a rule reading
a field its feature does not declare fails naming the rule and the field."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from attncc.cost_models import ATTENTION_COST_RULES, OP_COST_RULES, cost_rules
from attncc.cost_models.attention_cost import AttentionWork, apply_feature_rules
from attncc.cost_models.attention_rules import FeatureFieldError, FeatureFields
from attncc.ir.ops import OP_REGISTRY
from attncc.ir.ops.attention_features import MLA, MTLA, MoH
from attncc.ir.ops.attention_spec import FEATURE_REGISTRY, MaskSpec


def test_every_registered_rule_is_reachable_and_every_kind_has_one():
    assert set(ATTENTION_COST_RULES) == set(FEATURE_REGISTRY)          # a rule per feature kind the IR builds
    assert set(OP_COST_RULES) == set(OP_REGISTRY) - {"Constant"}       # Constant: weights, counted by their readers
    for table in cost_rules().values():
        assert all(path.startswith("attncc.cost_models.") for path in table.values())


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        ATTENTION_COST_RULES["mla"] = lambda w, f, s: None
    with pytest.raises(TypeError):
        OP_COST_RULES["AllReduce"] = None


def test_registry_does_not_depend_on_import_order():
    """A fresh process that imports only the analyzer has every rule, the same as one that loaded the system
    pricing (it used to add the collectives' rows) and priced an attention feature first."""
    show = "from attncc.cost_models.rules import cost_rules; import json; print(json.dumps(cost_rules()))"
    bare = subprocess.run([sys.executable, "-c", "import attncc.cost_models.analyze; " + show],
                          capture_output=True, text=True, check=True)
    loaded = subprocess.run([sys.executable, "-c", "import attncc.systems_api, attncc.cost_models as c; "
                             "from attncc.ir.ops import AttentionSpec; from attncc.ir.ops.attention_features import MoH; "
                             "c.attention_cost(AttentionSpec(2, 2, 8, head_mixing=MoH()), 1, 4, 4, 'float32', None, "
                             "'host-cpu'); " + show], capture_output=True, text=True, check=True)
    assert json.loads(bare.stdout) == json.loads(loaded.stdout) == json.loads(json.dumps(cost_rules()))
    assert "AllReduce" in json.loads(bare.stdout)["op"] and "mla" in json.loads(bare.stdout)["attention"]


def test_reading_an_undeclared_field_names_the_rule_and_the_field():
    with pytest.raises(FeatureFieldError, match=r"cost rule 'mtla_rule' reads field 'latent_dim', which MTLA "
                                                r"\(attention feature 'mtla'\) does not declare; it declares "
                                                r"\['rope_dim', 'stride'\]"):
        FeatureFields(MTLA(2), "mtla_rule").latent_dim
    assert FeatureFields(MLA(512, 64, True), "mla_rule").latent_dim == 512
    assert FeatureFields(MoH(top_k=2, shared_heads=2, routers="moh"), "moh_rule").balanced is True   # a property


def test_a_rule_meeting_a_feature_without_its_field_fails_through_the_registry():
    """The registered mla rule handed an 'mla' feature that lacks rope_dim stops with the rule and field named
    (before typed access it read a default of 0 through an alias)."""
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass(frozen=True)
    class LatentOnly:
        kind: ClassVar[str] = "mla"
        latent_dim: int = 64

    spec = SimpleNamespace(features_list=lambda: [LatentOnly()], head_dim=32, v_head_dim=32)
    work = AttentionWork(1, 4, 4, 8, 8, 32, 32, 4, MaskSpec())
    with pytest.raises(FeatureFieldError, match=r"cost rule 'mla_rule' reads field 'rope_dim'"):
        apply_feature_rules(work, spec)
