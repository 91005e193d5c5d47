"""`torch.ops.attncc.attention`: one custom op that keeps any attention variant whole through torch.export.

Signature: attention(Tensor[] inputs, str spec) -> Tensor, where `spec` is `json.dumps(AttentionSpec.to_dict())`
and `inputs` follow `spec.input_names()`. Its eager (and fake) implementation is the torch math in
functional.py / functional_mods.py; the torch frontend turns each call into one IR Attention op
(attncc/frontends/torch_converters/attncc_ops.py).
"""
from __future__ import annotations

import functools
import json

import torch

from ..ir.ops import AttentionSpec
from . import functional_mods  # noqa: F401  (registers the remaining variant math)
from .functional import run_variant

OP_NAME = "attncc.attention.default"


@functools.lru_cache(maxsize=256)
def spec_from_json(text: str) -> AttentionSpec:
    """Parse (and validate) a spec string; cached since modules pass the same string every call."""
    return AttentionSpec.from_dict(json.loads(text))


def spec_to_json(spec: AttentionSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def _named(inputs, spec: AttentionSpec) -> dict:
    names = spec.input_names()
    if len(inputs) != len(names):
        raise ValueError(f"attncc::attention: spec {spec.summary()!r} takes inputs {list(names)}, got {len(inputs)} tensors")
    return dict(zip(names, inputs))


@torch.library.custom_op("attncc::attention", mutates_args=())
def attention_op(inputs: list[torch.Tensor], spec: str) -> torch.Tensor:
    s = spec_from_json(spec)
    if s.kv_cache:
        raise ValueError("attncc::attention returns one tensor; concatenate the KV cache before the call (kv_cache=False)")
    return run_variant(s, _named(inputs, s)).contiguous()


@attention_op.register_fake
def _attention_fake(inputs, spec):
    # the torch math is shape-generic and data-independent in shape, so it runs on fake tensors as is
    s = spec_from_json(spec)
    return run_variant(s, _named(inputs, s)).contiguous()


def attention(spec: AttentionSpec, **inputs: torch.Tensor) -> torch.Tensor:
    """Call the custom op with inputs by name (query=, key=, value=, and the feature's extra inputs)."""
    names = spec.input_names()
    missing = [n for n in names if n not in inputs]
    unknown = [n for n in inputs if n not in names]
    if missing or unknown:
        raise TypeError(f"attention({spec.variant}): missing inputs {missing}, unexpected {unknown}; takes {list(names)}")
    return torch.ops.attncc.attention([inputs[n] for n in names], spec_to_json(spec))
