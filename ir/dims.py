"""Symbolic dimensions: an int, or a polynomial over named symbols ("batch", "seq", "past+seq").

Shapes are tuples of `Dim = int | str`. Strings are canonical polynomial text so two
equal expressions compare equal as strings ("seq+past" and "past+seq" both print as
"past+seq"). Only + and * with integer coefficients are needed by transformer graphs.
"""
from __future__ import annotations

import re
from typing import Mapping, Union

Dim = Union[int, str]
Poly = dict  # {tuple[str, ...] (sorted symbols): int coefficient}

_TERM = re.compile(r"^\s*(-?\d+)?\s*\*?\s*([A-Za-z_][\w]*(?:\s*\*\s*[A-Za-z_][\w]*)*)?\s*$")


def _parse(d: Dim) -> Poly:
    if isinstance(d, int):
        return {(): d} if d else {}
    poly: Poly = {}
    for term in d.replace("-", "+-").split("+"):
        term = term.strip()
        if not term:
            continue
        coeff, syms = 1, []
        for factor in term.split("*"):
            factor = factor.strip()
            if re.fullmatch(r"-?\d+", factor):
                coeff *= int(factor)
            elif re.fullmatch(r"-?[A-Za-z_]\w*", factor):
                if factor.startswith("-"):
                    coeff, factor = -coeff, factor[1:]
                syms.append(factor)
            else:
                raise ValueError(f"bad symbolic dimension {d!r}: cannot read term {term!r}")
        key = tuple(sorted(syms))
        poly[key] = poly.get(key, 0) + coeff
    return {k: v for k, v in poly.items() if v}


def _format(poly: Poly) -> Dim:
    poly = {k: v for k, v in poly.items() if v}
    if not poly:
        return 0
    if list(poly) == [()]:
        return poly[()]
    parts = []
    for key in sorted(poly, key=lambda k: (len(k) == 0, k)):
        c = poly[key]
        body = "*".join(key)
        if not key:
            parts.append(str(c))
        elif c == 1:
            parts.append(body)
        else:
            parts.append(f"{c}*{body}")
    return "+".join(parts).replace("+-", "-")


def canonical(d: Dim) -> Dim:
    """Return the canonical form of a dimension (ints stay ints)."""
    return d if isinstance(d, int) else _format(_parse(d))


def add(a: Dim, b: Dim) -> Dim:
    """Symbolic a + b."""
    pa, pb = _parse(a), _parse(b)
    for k, v in pb.items():
        pa[k] = pa.get(k, 0) + v
    return _format(pa)


def mul(a: Dim, b: Dim) -> Dim:
    """Symbolic a * b."""
    out: Poly = {}
    for ka, va in _parse(a).items():
        for kb, vb in _parse(b).items():
            k = tuple(sorted(ka + kb))
            out[k] = out.get(k, 0) + va * vb
    return _format(out)


def floordiv(a: Dim, b: Dim) -> Dim:
    """Exact division a / b when it can be decided; raises ValueError otherwise."""
    if isinstance(a, int) and isinstance(b, int):
        if b == 0 or a % b:
            raise ValueError(f"{a} is not divisible by {b}")
        return a // b
    if canonical(a) == canonical(b):
        return 1
    pa = _parse(a)
    if isinstance(b, int):
        if all(v % b == 0 for v in pa.values()):
            return _format({k: v // b for k, v in pa.items()})
        raise ValueError(f"{a} is not divisible by {b}")
    pb = _parse(b)
    if len(pb) == 1:
        (kb, vb), = pb.items()
        out = {}
        for k, v in pa.items():
            rest = list(k)
            for s in kb:
                if s not in rest:
                    raise ValueError(f"cannot divide {a} by {b}")
                rest.remove(s)
            if v % vb:
                raise ValueError(f"cannot divide {a} by {b}")
            out[tuple(rest)] = v // vb
        return _format(out)
    raise ValueError(f"cannot divide {a} by {b}")


def symbols(d: Dim) -> set[str]:
    """Names appearing in a dimension."""
    return set() if isinstance(d, int) else {s for k in _parse(d) for s in k}


def evaluate(d: Dim, env: Mapping[str, int]) -> int:
    """Evaluate a dimension with symbol values from `env`."""
    if isinstance(d, int):
        return d
    total = 0
    for key, coeff in _parse(d).items():
        term = coeff
        for s in key:
            if s not in env:
                raise KeyError(f"symbolic dimension '{s}' has no value")
            term *= env[s]
        total += term
    return total


def product(dims) -> Dim:
    """Symbolic product of a sequence of dims."""
    out: Dim = 1
    for d in dims:
        out = mul(out, d)
    return out


def equal(a: Dim, b: Dim) -> bool:
    """Whether two dims are provably equal."""
    return canonical(a) == canonical(b)


def is_static(shape) -> bool:
    """Whether every dim of a shape is an int."""
    return all(isinstance(d, int) for d in shape)
