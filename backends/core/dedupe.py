"""Identical kernels build once: plan steps whose PrimFuncs are structurally equal call one function.

A 12-layer model whose layers are identical lowers to 12 copies of each layer kernel (same shapes, same
schedule, different names); the plan's one library keeps one of them and every step calls it, so TVM
compiles each distinct kernel once. Equality is TVM's structural equality with the function's name
(`global_symbol`) left out, checked after a structural-hash match.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import json

import tvm_ffi

from .plan import Plan


def _anonymous(func):
    """The PrimFunc without its exported name (the one attribute that differs between copies)."""
    return func.without_attr("global_symbol") if func.attrs and "global_symbol" in func.attrs else func


def dedupe_funcs(plan: Plan) -> dict[str, str]:
    """Merge structurally equal PrimFuncs of `plan` in place: each duplicate's steps call the first
    function with that body, and the duplicate leaves `plan.funcs`. Returns {dropped name: kept name}."""
    kept: dict[int, list[tuple[str, object]]] = {}
    renamed: dict[str, str] = {}
    for name, func in plan.funcs.items():
        body = _anonymous(func)
        bucket = kept.setdefault(tvm_ffi.structural_hash(body), [])
        twin = next((n for n, b in bucket if tvm_ffi.structural_equal(b, body)), None)
        if twin is None:
            bucket.append((name, body))
        else:
            renamed[name] = twin
    for name in renamed:
        del plan.funcs[name]
    for step in plan.steps:
        if step.get("func") in renamed:
            step["func"] = renamed[step["func"]]
    return renamed


def kernel_count(plan: Plan) -> int:
    """Distinct compiled functions the plan's steps call (works for plans loaded from JSON too)."""
    return len({s["func"] for s in plan.steps if s.get("func")})



# attention PrimFuncs by (plugin class, config, target) for the build under way (`one_build`): generating
# one parses TVMScript (~0.8 s on the 2-core host), and a 12-layer ViT asked for the same kernel 12 times
# (10 of its 15 s cold lowering). PrimFuncs are immutable TVM objects, so handing out one is safe. The memo
# lives for one build only, so a plugin or kernel-library change between builds is always seen.
_BUILD_MEMO: contextvars.ContextVar[dict | None] = contextvars.ContextVar("attncc_build_memo", default=None)


@contextlib.contextmanager
def one_build():
    """Within this block, `attention_primfunc_once` generates each distinct attention kernel once."""
    token = _BUILD_MEMO.set({})
    try:
        yield
    finally:
        _BUILD_MEMO.reset(token)


def attention_primfunc_once(plugin, cfg, target: dict):
    """`plugin.attention_primfunc(cfg, target)`, generated once per (plugin class, cfg, target) inside
    `one_build()` (outside it: every time). Failures are not remembered: each asking node gets the plugin's
    own exception (and its fallback note)."""
    memo = _BUILD_MEMO.get()
    try:
        key = (type(plugin).__module__, type(plugin).__qualname__, cfg, json.dumps(target, sort_keys=True, default=str))
        hash(key)
    except TypeError:   # an unhashable config field: no memo
        memo = None
    if memo is None:
        return plugin.attention_primfunc(cfg, target)
    if key not in memo:
        memo[key] = plugin.attention_primfunc(cfg, target)
    func, meta = memo[key]
    return func, copy.deepcopy(meta)   # the caller's own copy of the metadata (it lands in the plan)
