"""KV cache: K/V = Concat(past, new) on the sequence axis of bhsd tensors -> spec.kv_cache.

The Attention op takes past and new K/V and returns the concatenation as present_key/present_value;
the Concat's other readers (the returned cache) are pointed at those outputs by the pass.
"""
from __future__ import annotations

from ... import dims as D
from ...graph import Value
from .common import producer_kind


def split_cache(x: Value) -> tuple[Value, Value] | None:
    """(past, new) when the 4-D bhsd `x` is Concat([past, new], axis=2); else None."""
    if producer_kind(x) != "Concat" or x.rank != 4:
        return None
    n = x.producer
    if n.op.axis % 4 != 2 or len(n.inputs) != 2:
        return None
    past, new = n.inputs
    if not all(D.equal(past.shape[i], new.shape[i]) for i in (0, 1, 3)):
        return None
    return past, new
