"""Default optimization pipelines per target — the one place they are defined.

Passes not registered yet (added by later work) are skipped with a note, so the
defaults can name the full intended pipeline.
"""
from __future__ import annotations

from .ir.passes import PASS_REGISTRY, parse_pipeline

# Order matters: clean up, lift spelled-out attention, fold layout into the op, fuse, then tile.
DEFAULT_PIPELINES: dict[str, str] = {
    "reference": "canonicalize,constant-fold,lift-attention,canonicalize-attention,fold-repeat-kv,dce",
    "cpu": ("canonicalize,constant-fold,lift-attention,canonicalize-attention,fold-repeat-kv,fuse-qkv,"
            "fuse-attention,decode-split-kv,cse,dce,tile{target=cpu}"),
}


def default_pipeline(target: str) -> str:
    """The default pipeline text for `target`, restricted to passes that are registered."""
    text = DEFAULT_PIPELINES.get(target, DEFAULT_PIPELINES["reference"])
    return ",".join(item for item in _items(text) if item.split("{")[0] in PASS_REGISTRY)


def _items(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return out + ([cur.strip()] if cur.strip() else [])


def validate(text: str) -> None:
    """Raise PipelineError for a malformed user pipeline."""
    parse_pipeline(text)
