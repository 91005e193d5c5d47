"""Shared rules for variant features: slot checks and the q/k/v shape checks their `infer` hooks reuse."""
from __future__ import annotations

from ... import dims as D
from ...errors import require
from ...types import TensorType
from ..attention_spec import SpecError


def check(cond: bool, message: str) -> None:
    """Raise SpecError(message) unless cond."""
    if not cond:
        raise SpecError(message)


def check_plain_context(feat, spec, allow_mask_tensor: bool = False) -> None:
    """Variant features run on bhsd tensors without an in-op KV cache or RoPE, and (unless allowed) without a mask tensor.

    Only score mods may be combined with each other; any other second feature is rejected.
    """
    k = feat.kind
    check(spec.layout == "bhsd", f"{k}: layout must be 'bhsd' (got {spec.layout!r}); canonicalize first")
    check(not spec.kv_cache, f"{k}: kv_cache=True is not supported; concatenate the cache before the op")
    check(spec.rope is None, f"{k}: in-op RoPE is not supported; rotate q/k before the op")
    if not allow_mask_tensor:
        check(spec.mask.input == "none" and not spec.mask.kv_lengths,
              f"{k}: mask tensors / kv_lengths are not supported (mask.input={spec.mask.input!r})")
    others = [f for f in spec.features_list() if f is not feat]
    if getattr(feat, "is_score_mod", False):
        others = [f for f in others if not getattr(f, "is_score_mod", False)]
    check(not others, f"{k} cannot be combined with {[f.kind for f in others]}; one variant feature per Attention op")


def positive_int(kind: str, name: str, v) -> None:
    check(isinstance(v, int) and not isinstance(v, bool) and v > 0, f"{kind}.{name} must be a positive int, got {v!r}")


def int_pair(kind: str, name: str, v) -> None:
    check(isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v),
          f"{kind}.{name} must be a pair of positive ints, got {v!r}")


def qkv(spec, t: dict, node, q_heads=None, q_dim=None, k_heads=None, k_dim=None, v_heads=None, v_dim=None,
        q_batch=None):
    """Check rank-4 float q/k/v against the given (default: spec) heads/dims; returns (q, k, v, B, Sq, Skv)."""
    q, k, v = t["query"], t["key"], t["value"]
    for name in ("query", "key", "value"):
        require(t[name].rank == 4 and t[name].is_float, node, f"{name} must be a rank-4 float (B, H, S, D) tensor, got {t[name]}")
    require(q.dtype == k.dtype == v.dtype, node, f"query/key/value dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}")
    want = (("query", q, spec.num_heads if q_heads is None else q_heads, spec.head_dim if q_dim is None else q_dim),
            ("key", k, spec.num_kv_heads if k_heads is None else k_heads, spec.head_dim if k_dim is None else k_dim),
            ("value", v, spec.num_kv_heads if v_heads is None else v_heads, spec.v_head_dim if v_dim is None else v_dim))
    for name, tt, heads, dim in want:
        require(D.equal(tt.shape[1], heads), node, f"{name} has {tt.shape[1]} heads, expected {heads}")
        require(D.equal(tt.shape[3], dim), node, f"{name} head dim is {tt.shape[3]}, expected {dim}")
    B = k.shape[0]
    require(D.equal(v.shape[0], B), node, f"key batch {B} differs from value batch {v.shape[0]}")
    if q_batch is None:
        require(D.equal(q.shape[0], B), node, f"query batch {q.shape[0]} differs from key batch {B}")
    else:
        require(D.equal(q.shape[0], q_batch), node, f"query batch must be {q_batch}, got {q.shape[0]}")
    require(D.equal(k.shape[2], v.shape[2]), node, f"key and value lengths differ: {k.shape[2]} vs {v.shape[2]}")
    return q, k, v, B, q.shape[2], k.shape[2]


def static_int(d, node, what: str) -> int:
    """A dim that a feature needs as a concrete int (its output shape depends on it)."""
    require(isinstance(d, int), node, f"{what} must be static for this variant, got symbolic {d!r}")
    return d


def expect(t: dict, name: str, node, dtype_float: bool, shape_rule: tuple, what: str) -> None:
    """Check extra input `name`: rank and each dim equal to shape_rule (None = any, (a, b) = either)."""
    x = t[name]
    require(x.rank == len(shape_rule), node, f"{name} must be {what}, got {x}")
    require(x.is_float if dtype_float else x.dtype == "bool", node, f"{name} must be {'float' if dtype_float else 'bool'}, got {x.dtype}")
    for got, rule in zip(x.shape, shape_rule):
        if rule is None:
            continue
        options = rule if isinstance(rule, tuple) else (rule,)
        require(any(D.equal(got, o) for o in options), node, f"{name} must be {what}, got {x}")


def out(q: TensorType, *shape) -> list[TensorType]:
    return [TensorType(q.dtype, shape)]
