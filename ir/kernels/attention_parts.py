"""The kernels one Attention node runs as: layout/RoPE/KV-cache prologue kernels, the attention kernel and
the output transpose. The backend core's attention lowering emits exactly these (in this order) and the
cost report prices one row per part, so both read this one decision.
"""
from __future__ import annotations

from .. import dims as D
from ..graph import Node
from .groups import FusionRules

# what each part does, for reports: "layout" parts copy a tensor, "rope" rotates it, "attention" is the kernel
PART_CLASS = {"q_bhsd": "layout", "k_bhsd": "layout", "v_bhsd": "layout", "past_bhsd": "layout",
              "present_bshd": "layout", "kv_cache": "layout", "mask": "layout", "out_bshd": "layout",
              "rope_q": "rope", "rope_k": "rope", "attention": "attention", "attention_te": "attention",
              "reference": "reference"}


def kernel_blocker(spec, rules: FusionRules) -> str | None:
    """Why the flash kernel cannot run this spec (the generic TE attention runs instead), or None."""
    if rules.attention_generic:
        return "options['attention'] == 'generic'"
    if spec.mask.kv_lengths:
        return "the flash kernels take no kv_lengths input"
    if spec.softcap and spec.softcap_order == "after_mask" and spec.mask.input == "additive":
        return "softcap after an additive mask is not a kernel score mod"
    return None


TE_SCORE_MODS = ("alibi",)   # kept score mods the generic TE attention computes as well as the flash kernel


def host_features(spec, rules: FusionRules) -> list:
    """The spec's variant features no kernel computes (they run on the host reference); the score mods in
    `rules.kernel_score_mods` (e.g. alibi on cpu) are the kernel's own, and those in TE_SCORE_MODS also the
    generic TE attention's (when the flash kernel cannot run)."""
    blocked = kernel_blocker(spec, rules) is not None
    return [f for f in spec.features_list()
            if f.kind not in rules.kernel_score_mods or (blocked and f.kind not in TE_SCORE_MODS)]


def _bhsd(shape) -> tuple:
    return (shape[0], shape[2], shape[1], shape[3])


def mask_needs_copy(spec, q_bhsd, kv_len, mask_shape, mask_dtype: str, rules: FusionRules) -> bool:
    """True when the attention kernel cannot read the mask as given (shape or dtype) and a kernel first
    writes it as (1|B, 1|Hq, Sq, Skv) uint8 keep-mask / fp32 bias (full (B, Hq, ...) under attention_mask_full)."""
    b, hq, sq, _ = q_bhsd
    shape = [1] * (4 - len(mask_shape)) + list(mask_shape)
    ok_shape = shape[2] == sq and shape[3] == kv_len and shape[0] in (1, b) and shape[1] in (1, hq) and \
        (not rules.attention_mask_full or (shape[0] == b and shape[1] == hq))
    kind = spec.mask.input
    dtype_ok = (kind == "bool" and mask_dtype in ("bool", "uint8")) or mask_dtype == "float32"
    return not (ok_shape and dtype_ok)


def attention_parts(node: Node, shapes: dict[int, tuple], rules: FusionRules) -> list[str]:
    """The kernels (labels, in launch order) the backend core runs for Attention `node`.

    `shapes`: id(Value) -> shape, as given to `plan_groups`."""
    spec = node.op.spec
    if host_features(spec, rules):   # undecomposed variant features: the host reference, one step
        return ["reference"]
    named = dict(zip(spec.input_names(), node.inputs))
    bshd = spec.layout == "bshd"
    parts: list[str] = []
    if bshd:   # canonicalize to bhsd; the RoPE kernel reads bshd q/k itself
        parts += [f"{lbl}_bhsd" for lbl in ("q", "k", "v") if spec.rope is None or lbl == "v"]
    if spec.rope is not None:
        parts += ["rope_q", "rope_k"]
    q = shapes[id(named["query"])]
    q_bhsd = _bhsd(q) if bshd else q
    seq_ax = 1 if bshd else 2
    kv_len = shapes[id(named["key"])][seq_ax]
    if spec.kv_cache:
        for past in (named["past_key"], named["past_value"]):
            past_len = shapes[id(past)][seq_ax]
            if past_len == 0:   # a first step: present = the new rows, one copy
                parts.append("present_bshd" if bshd else "kv_cache")
            else:
                parts += (["past_bhsd", "kv_cache", "present_bshd"] if bshd else ["kv_cache"])
        kv_len = D.add(shapes[id(named["past_key"])][seq_ax], kv_len)
    if kernel_blocker(spec, rules) is not None:
        parts.append("attention_te")
    else:
        mask = named.get("mask")
        if spec.mask.input != "none" and mask is not None and \
                mask_needs_copy(spec, q_bhsd, kv_len, shapes[id(mask)], mask.dtype, rules):
            parts.append("mask")
        parts.append("attention")
    if bshd:
        parts.append("out_bshd")
    return parts
