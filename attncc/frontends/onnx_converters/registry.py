"""The ONNX converter table: (domain, op type) -> implementations keyed by the opset version they start at.

A converter is `fn(ctx, node) -> list[ir.Value | None]` (one entry per ONNX output; None for an
output it does not produce). `lookup` picks the newest implementation whose version is <= the
model's opset for the node's domain, so an op never dispatches on its type alone.
"""
from __future__ import annotations

from typing import Callable

# the default ONNX domain has two spellings
DOMAIN_ALIASES = {"ai.onnx": ""}

Converter = Callable[..., list]
CONVERTERS: dict[tuple[str, str], dict[int, Converter]] = {}


class UnsupportedONNXOpError(NotImplementedError):
    """An ONNX node attncc cannot import: the message names the node, op type, domain/opset and alternatives."""


def canonical_domain(domain: str) -> str:
    """'' and 'ai.onnx' are the same domain."""
    return DOMAIN_ALIASES.get(domain, domain)


def converter(domain: str, op_type: str, since: int = 1):
    """Decorator: register `fn` for (domain, op_type) at opset versions >= `since`."""

    def deco(fn: Converter) -> Converter:
        CONVERTERS.setdefault((canonical_domain(domain), op_type), {})[since] = fn
        return fn

    return deco


def supported_ops(domain: str | None = None) -> list[str]:
    """Sorted 'domain::Op (since vN)' strings, optionally for one domain."""
    out = []
    for (dom, op), versions in sorted(CONVERTERS.items()):
        if domain is None or dom == canonical_domain(domain):
            out.append(f"{dom or 'ai.onnx'}::{op} (since v{min(versions)})")
    return out


def lookup(domain: str, op_type: str, opset: int | None, node_name: str) -> Converter:
    """The converter for a node, or UnsupportedONNXOpError naming it and listing what is supported."""
    dom = canonical_domain(domain)
    versions = CONVERTERS.get((dom, op_type))
    where = f"ONNX node '{node_name}' (op {op_type}, domain '{dom or 'ai.onnx'}', opset {opset})"
    if versions is None:
        same = [op for (d, op) in CONVERTERS if d == dom]
        other = sorted(d or "ai.onnx" for (d, op) in CONVERTERS if op == op_type and d != dom)
        hint = f"; {op_type} is supported in domain(s) {other}" if other else ""
        raise UnsupportedONNXOpError(
            f"{where}: no converter for this (domain, op){hint}. Supported ops in domain "
            f"'{dom or 'ai.onnx'}': {', '.join(sorted(same)) or '(none)'}")
    if opset is None:
        raise UnsupportedONNXOpError(f"{where}: the model imports no opset for domain '{dom or 'ai.onnx'}'")
    usable = [v for v in versions if v <= opset]
    if not usable:
        raise UnsupportedONNXOpError(
            f"{where}: converters exist only for opset >= {min(versions)} (versions {sorted(versions)})")
    return versions[max(usable)]
