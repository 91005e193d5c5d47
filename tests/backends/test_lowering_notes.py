"""Issue 23 item 3: lowering notes are typed records the report and strict=True read (not English), they survive
a plan's JSON, and a LoweringError raised anywhere in the core names the target being lowered."""
from __future__ import annotations

import pytest

import attncc
from attncc.backends.core.errors import LoweringError, lowering_for
from attncc.backends.core.notes import FALLBACK, INFO, KINDS, LoweringNote, as_note, fallbacks
from attncc.backends.core.plan import Plan
from attncc.compiled import fallback_notes
from attncc.errors import FallbackError
from attncc.ir import Graph
from attncc.errors import FallbackWarning
from attncc.ir.ops import Attention, AttentionSpec, MaskSpec
from attncc.ir.ops.attention_features import LinearAttn


def test_a_note_is_its_message_and_its_record():
    note = LoweringNote("attn", FALLBACK, "node 'attn': ran the numpy reference", "numpy reference")
    assert note == "node 'attn': ran the numpy reference" and (note.node, note.kind) == ("attn", FALLBACK)
    assert fallback_notes([note, "node 'b': a generic reference fallback, said in English only"]) == [
        ("attn", "numpy reference", note)]
    with pytest.raises(ValueError, match="kinds: fallback, kernel, tile, rejection, info"):
        LoweringNote("attn", "oops", "x")
    with pytest.raises(ValueError, match="says how the node ran"):
        LoweringNote("attn", FALLBACK, "x")
    assert set(KINDS) >= {"fallback", "kernel", "tile", "rejection"}


def test_notes_keep_their_kind_through_a_plan_json():
    plan = Plan([], [], {}, [], [LoweringNote("n", FALLBACK, "node 'n': used the generic schedule", "generic schedule"),
                                 "a plain note"])
    back = Plan.from_json(plan.to_json()).notes
    assert [(n.node, n.kind, n.ran_as) for n in back] == [("n", FALLBACK, "generic schedule"), (None, INFO, "")]
    assert fallbacks(back) == [back[0]] and as_note(back[1]) is back[1]


@pytest.mark.parametrize("target", ["cuda", "mobile-gpu"])
def test_lowering_errors_name_the_target_being_lowered(target):
    with lowering_for(target):
        err = LoweringError("add_6", "Binary", "defining its TVM compute failed")
    assert str(err).startswith(f"{target} backend: node 'add_6' (Binary)") and err.target == target
    assert LoweringError("x", "Y", "z", target="optical").target == "optical"


def test_a_reference_fallback_is_a_typed_note_strict_raises_and_the_report_marks():
    """The DeltaNet rule runs as the host reference on cpu (a documented fallback): the core writes a typed
    fallback note; the warning and the report's row say how the node ran, strict=True raises on it."""
    g = Graph("delta")
    spec = AttentionSpec(2, 2, 8, mask=MaskSpec(causal=True), kv_source=LinearAttn("delta"))
    shapes = {"query": (1, 2, 4, 8), "key": (1, 2, 4, 8), "value": (1, 2, 4, 8), "beta": (1, 2, 4)}
    vals = [g.add_input(n, "float32", shapes[n]) for n in spec.input_names()]
    g.set_outputs([g.add1(Attention(spec=spec), vals, name="attn")])
    with pytest.warns(FallbackWarning, match="node 'attn' fell back to numpy reference"):
        cm = attncc.compile(g, target="cpu", passes="dce", options={"cache": False})
    (note,) = fallbacks(cm.executable.notes)
    assert (note.node, note.kind, note.ran_as) == ("attn", FALLBACK, "numpy reference")
    row = next(r for r in cm.report.rows if r.name == "attn" or "attn" in r.ops)   # per-op or kernel rows
    assert row.lowering == "numpy reference"
    with pytest.raises(FallbackError, match="node 'attn' ran as numpy reference"):
        attncc.compile(g, target="cpu", passes="dce", options={"cache": False}, strict=True)
