"""Repeated layers priced once: export one layer of each distinct structure, scale by how many there are.

A decoder is a stack of layers (an nn.ModuleList) whose members are identical in structure: same module
types, same parameter names, shapes and dtypes, same attention kind. Exporting 80 identical Llama-2-70B
layers costs 80x the time and memory of exporting one, and prices the same op 80 times. `representative_layers`
swaps the stack for one layer per distinct structure (DeepSeek-V3: its first dense layer and its first MoE
layer) for the duration of an export; the counts say how many real layers each kept one stands for.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch

# per-layer attributes that change behaviour without changing parameters (sliding vs full attention)
BEHAVIOUR_ATTRIBUTES = ("attention_type", "layer_type", "sliding_window", "is_sliding", "use_sliding_window")


@dataclass
class LayerGroups:
    """The layer stack at `container` (a module path) and, per kept layer, the real layers it stands for."""

    container: str
    total: int
    members: dict[int, list[int]] = field(default_factory=dict)   # kept original index -> identical layers

    @property
    def kept(self) -> list[int]:
        return sorted(self.members)

    def counts_by_path(self) -> dict[str, int]:
        """{"<container>.<position in the exported stack>": real layers it stands for}."""
        return {f"{self.container}.{pos}": len(self.members[i]) for pos, i in enumerate(self.kept)}


def find_layer_stack(model: torch.nn.Module) -> tuple[str, torch.nn.ModuleList] | None:
    """The longest nn.ModuleList (at least 2 layers) in `model`: the decoder stack of a transformer."""
    best = None
    for path, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) >= 2 and (best is None or len(module) > len(best[1])):
            best = (path, module)
    return best


def layer_signature(layer: torch.nn.Module) -> tuple:
    """What makes two layers price the same: module types, parameter/buffer names, shapes and dtypes, and
    behaviour attributes (sliding window, attention type) of every submodule."""
    parts = []
    for path, module in layer.named_modules():
        attrs = tuple((a, repr(getattr(module, a))) for a in BEHAVIOUR_ATTRIBUTES if hasattr(module, a))
        parts.append((path, type(module).__qualname__, attrs))
    tensors = tuple((n, tuple(t.shape), str(t.dtype)) for n, t in (*layer.named_parameters(), *layer.named_buffers()))
    return tuple(parts), tensors


def group_layers(model: torch.nn.Module) -> LayerGroups | None:
    """Group the layer stack's members by `layer_signature`; None when there is no stack or nothing repeats."""
    found = find_layer_stack(model)
    if found is None:
        return None
    path, stack = found
    groups = LayerGroups(path, len(stack))
    first_of: dict[tuple, int] = {}
    for i, layer in enumerate(stack):
        key = first_of.setdefault(layer_signature(layer), i)
        groups.members.setdefault(key, []).append(i)
    return groups if len(groups.members) < len(stack) else None


@contextmanager
def representative_layers(model: torch.nn.Module) -> Iterator[LayerGroups | None]:
    """Within the block, the model's layer stack holds one layer per distinct structure (restored after)."""
    groups = group_layers(model)
    if groups is None:
        yield None
        return
    parent_path, _, name = groups.container.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    full = getattr(parent, name)
    setattr(parent, name, torch.nn.ModuleList([full[i] for i in groups.kept]))
    try:
        yield groups
    finally:
        setattr(parent, name, full)


def parameter_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of the whole model (meta tensors included: shapes x dtype sizes)."""
    seen: set[int] = set()
    total = 0
    for t in (*model.parameters(), *model.buffers()):
        if id(t) not in seen:   # tied weights (embedding = head) count once
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total
