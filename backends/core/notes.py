"""Typed lowering records: what the core and the plugins say about how each node was lowered.

A `LoweringNote` is still the sentence users read (it is a `str`), and it carries the node, the kind and,
for a fallback, how the node ran instead, so the report and `strict=True` read data, never English.
TVM-free (attncc.compiled reads it).
"""
from __future__ import annotations

from typing import Any

FALLBACK = "fallback"     # the node did not run as its target's kernel (generic TE attention/schedule, host reference)
KERNEL = "kernel"         # which kernel / library was chosen (e.g. nvcc AOT, tensor cores or not)
TILE = "tile"             # the tile a kernel runs differs from the recorded one (it rejected that tiling)
REJECTION = "rejection"   # a build form was rejected and another used (e.g. no shape-generic build)
INFO = "info"             # anything else (runtime setup, emulation); also every untyped note
KINDS = (FALLBACK, KERNEL, TILE, REJECTION, INFO)

# how a fallback node ran, as the report's "ran as" column says it
RAN_AS = ("generic TE attention", "generic schedule", "numpy reference", "host fallback")


class LoweringNote(str):
    """LoweringNote(node, kind, message[, ran_as]): the message is the string value."""

    node: str | None
    kind: str
    ran_as: str

    def __new__(cls, node: str | None, kind: str, message: str, ran_as: str = "") -> "LoweringNote":
        if kind not in KINDS:
            raise ValueError(f"lowering note kind {kind!r}; kinds: {', '.join(KINDS)}")
        if kind == FALLBACK and ran_as not in RAN_AS:
            raise ValueError(f"a fallback note says how the node ran: one of {', '.join(RAN_AS)}; got {ran_as!r}")
        note = super().__new__(cls, message)
        note.node, note.kind, note.ran_as = node, kind, ran_as
        return note

    @property
    def message(self) -> str:
        return str.__str__(self)

    def to_dict(self) -> dict:
        return {"node": self.node, "kind": self.kind, "message": self.message, "ran_as": self.ran_as}

    def __reduce__(self):
        return (LoweringNote, (self.node, self.kind, self.message, self.ran_as))


def as_note(item: Any) -> LoweringNote:
    """A note from a plan's JSON (a dict) or any string (an untyped string is INFO, never a fallback)."""
    if isinstance(item, LoweringNote):
        return item
    if isinstance(item, dict):
        return LoweringNote(item.get("node"), item.get("kind", INFO), item["message"], item.get("ran_as", ""))
    return LoweringNote(None, INFO, str(item))


def fallbacks(notes) -> list[LoweringNote]:
    """The notes that say a node did not run as its generated kernel."""
    return [n for n in notes if isinstance(n, LoweringNote) and n.kind == FALLBACK]
