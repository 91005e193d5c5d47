"""What torch.export needs besides the model: tensor-only outputs and inputs on the weights' device.

A Hugging Face causal LM with its default `use_cache=True` returns a `DynamicCache` next to its logits;
torch.export cannot flatten it ("DynamicCache in output"). `TensorOutputs` runs the user's model unchanged
and returns only its tensor outputs (the cache's new K/V are recomputed inside the graph anyway, and
pricing reads the KV-cache size from the attention ops). A model whose parameters live on the `meta`
device (how a 70B model is instantiated without its weights) is exported with its example inputs moved
to `meta` too, so tracing never mixes devices.
"""
from __future__ import annotations

from typing import Any

import torch

# torch.export's error for an output type it cannot flatten (a cache object)
UNFLATTENABLE_OUTPUT = "in output, which is not a known type"


class TensorOutputs(torch.nn.Module):
    """forward(*args) -> the tensor outputs of `model(*args)`, in order (cache objects and None dropped)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *args):
        return tuple(_tensors(self.model(*args)))


def _tensors(out: Any):
    if torch.is_tensor(out):
        yield out
    elif isinstance(out, dict):   # transformers' ModelOutput is an OrderedDict of the fields that are set
        for v in out.values():
            yield from _tensors(v)
    elif isinstance(out, (list, tuple)):
        for v in out:
            yield from _tensors(v)
    # anything else (DynamicCache, None, Python numbers) is not a tensor output of the graph


def returns_cache(model: torch.nn.Module) -> bool:
    """A transformers model configured to return its KV cache (use_cache=True, the default)."""
    config = getattr(model, "config", None)
    return type(model).__module__.startswith("transformers") and bool(getattr(config, "use_cache", False))


def positional_dynamic_shapes(dynamic_shapes: Any, forward_params: list[str], n_args: int) -> Any:
    """The user's dynamic_shapes (a dict by parameter name or a tuple) as TensorOutputs' `(*args)` spec."""
    if dynamic_shapes is None:
        return None
    if isinstance(dynamic_shapes, dict):
        entries = [dynamic_shapes.get(p) for p in forward_params[:n_args]]
    else:
        entries = list(dynamic_shapes)
    return (tuple(entries + [None] * (n_args - len(entries))),)


def on_meta(model: torch.nn.Module) -> bool:
    """True when any parameter or buffer of `model` lives on the meta device (shapes and dtypes only)."""
    return any(t.device.type == "meta" for t in (*model.parameters(), *model.buffers()))


def to_meta(args: tuple) -> tuple:
    """Tensor example inputs moved to the meta device (other values unchanged)."""
    return tuple(a.to("meta") if torch.is_tensor(a) else a for a in args)
